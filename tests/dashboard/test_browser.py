"""The dashboard in a real browser (Debian's chromium via Playwright) against a live API, worker and history sink.

Every page is opened and screenshotted (test artifacts; with TICKR_UPDATE_DOCS_SCREENSHOTS=1 the overview and a
job page also into ``docs/`` for the README). A console error in the browser fails the test. No fixed sleeps:
Playwright's auto-waiting ``expect``.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from tests.dashboard.stack import CHROMIUM, CHROMIUM_ARGS, DOCS, clean_dir, live_stack, require_chromium
from tickr.config import Settings
from tickr.core.job import JobState

pytestmark = pytest.mark.slow
LIVE_TIMEOUT = 10_000  # ms: the page polls every 2 s
TOKEN, READ = "browser-admin-token", "browser-read-token"


def docs_shots(artifacts: Path) -> Path:
    """Where the README's screenshots go: ``docs/`` with TICKR_UPDATE_DOCS_SCREENSHOTS=1, else the artifacts (a
    test run leaves the checkout as it found it)."""
    return DOCS if os.environ.get("TICKR_UPDATE_DOCS_SCREENSHOTS") == "1" else artifacts


@pytest.fixture
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = os.environ.get("TICKR_TEST_ARTIFACTS")
    return clean_dir(Path(where) / "dashboard") if where else tmp_path_factory.mktemp("screenshots")


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    require_chromium()
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            await chromium.close()


class Console:
    """Collects the page's console errors and uncaught exceptions; ``allowed`` ones (regexes) are expected."""

    def __init__(self, page: Any, allowed: tuple[str, ...] = ()) -> None:
        self.errors: list[str] = []
        self.allowed = [re.compile(a) for a in allowed]
        page.on("console", lambda m: m.type == "error" and self._add(m.text))
        page.on("pageerror", lambda exc: self._add(f"uncaught: {exc}"))

    def _add(self, text: str) -> None:
        if not any(a.search(text) for a in self.allowed):
            self.errors.append(text)

    def check(self) -> None:
        assert not self.errors, self.errors


async def new_page(browser: Any, width: int = 1366, height: int = 768) -> Any:
    context = await browser.new_context(viewport={"width": width, "height": height}, timezone_id="Europe/Paris")
    return await context.new_page()


def settings_for(redis_url: str, tmp_path: Path, **extra: Any) -> Settings:
    return Settings(redis_url=redis_url, data_dir=tmp_path, **extra)


async def test_operator_flow(browser: Any, redis_url: str, tmp_path: Path, queue: str, artifacts: Path) -> None:
    from playwright.async_api import expect

    async with live_stack(settings_for(redis_url, tmp_path), queue, artifacts) as stack:
        page = await new_page(browser)
        console = Console(page)
        await stack.submit("ok")
        await page.goto(f"{stack.base}/")
        await expect(page).to_have_url(f"{stack.base}/dashboard")
        await expect(page.locator(f'tr[data-queue="{queue}"]')).to_be_visible()

        # A failing job arrives in the DLQ while the queue page is open, without a reload.
        await page.goto(f"{stack.base}/dashboard/queues/{queue}")
        await expect(page.locator("#dead")).to_contain_text("The dead-letter queue is empty.")
        dead_id = await stack.submit("flaky", max_retries=0)
        row = page.locator(f'#dead tr[data-job="{dead_id}"]')
        await expect(row).to_be_visible(timeout=LIVE_TIMEOUT)
        await expect(row).to_contain_text("kaput on the first try")
        await page.screenshot(path=artifacts / "queue.png", full_page=True)

        # Replay it, and see it succeed on its page (attempts from the SQL history, with the first one's traceback).
        await row.get_by_role("button", name="Replay").click()
        await expect(page.locator(".flash")).to_contain_text("replayed 1 dead job")
        await page.goto(f"{stack.base}/dashboard/jobs/{dead_id}")
        await expect(page.locator("#job-state")).to_contain_text("succeeded", timeout=LIVE_TIMEOUT)
        attempts = page.locator("#attempts li")
        await expect(attempts).to_have_count(2, timeout=LIVE_TIMEOUT)
        await expect(attempts.nth(0)).to_contain_text("failed")
        await expect(attempts.nth(1)).to_contain_text("succeeded")
        await attempts.nth(0).locator("summary").click()
        await expect(attempts.nth(0).locator("pre")).to_contain_text("RuntimeError: kaput on the first try")
        await page.screenshot(path=artifacts / "job.png", full_page=True)
        await page.evaluate("window.scrollTo(0, 0)")
        await page.screenshot(path=docs_shots(artifacts) / "dashboard-job.png")

        # Filter the jobs by type; the filters survive the live refresh.
        await page.goto(f"{stack.base}/dashboard/jobs?queue={queue}")
        await expect(page.locator("#jobs tbody tr")).to_have_count(2)
        await page.get_by_label("Type").fill("flaky")
        await page.get_by_role("button", name="Filter").click()
        await expect(page).to_have_url(re.compile(r"type=flaky"))
        await expect(page.locator("#jobs tbody tr")).to_have_count(1)
        await expect(page.locator(f'#jobs tr[data-job="{dead_id}"]')).to_be_visible()
        await page.screenshot(path=artifacts / "jobs.png", full_page=True)

        # Pause the queue: a new job stays queued (the live count shows it); resume: it runs.
        await page.goto(f"{stack.base}/dashboard/queues/{queue}")
        await page.get_by_role("button", name="Pause queue").click()
        await expect(page.locator('[data-field="paused"]')).to_have_text("paused")
        held = await stack.submit("ok")
        await expect(page.locator('[data-count="queued"]')).to_have_text("1", timeout=LIVE_TIMEOUT)
        assert (await stack.app.store.jobs.get_job(held)).status is JobState.QUEUED
        await page.get_by_role("button", name="Resume queue").click()
        await expect(page.locator('[data-count="queued"]')).to_have_text("0", timeout=LIVE_TIMEOUT)

        for name, path in (("workers", "/dashboard/workers"), ("schedules", "/dashboard/schedules")):
            await page.goto(stack.base + path)
            await expect(page.locator("h1")).to_have_text(name.capitalize())
            await page.screenshot(path=artifacts / f"{name}.png", full_page=True)
        await expect(page.locator("#workers")).to_have_count(0)  # on the schedules page now
        await page.goto(f"{stack.base}/dashboard/workers")
        await expect(page.locator(f"#workers td:has-text('{queue}')")).to_have_count(1)

        await page.goto(f"{stack.base}/dashboard")
        await expect(page.locator(f'tr[data-queue="{queue}"]')).to_be_visible()
        await page.screenshot(path=artifacts / "overview.png", full_page=True)
        await page.screenshot(path=docs_shots(artifacts) / "dashboard-overview.png")

        narrow = await new_page(browser, 390, 844)
        narrow_console = Console(narrow)
        await narrow.goto(f"{stack.base}/dashboard/queues/{queue}")
        await expect(narrow.get_by_role("button", name="Pause queue")).to_be_visible()
        await narrow.screenshot(path=artifacts / "queue-390px.png", full_page=True)
        narrow_console.check()
        console.check()


async def test_login_and_read_only_token(
    browser: Any, redis_url: str, tmp_path: Path, queue: str, artifacts: Path
) -> None:
    from playwright.async_api import expect

    settings = settings_for(redis_url, tmp_path, api_token=SecretStr(TOKEN), api_read_token=SecretStr(READ))
    async with live_stack(settings, queue, artifacts) as stack:
        await stack.submit("ok")
        page = await new_page(browser)
        # The one expected error: the 401 of the wrong token's login page.
        console = Console(page, allowed=(r"status of 401",))
        await page.goto(f"{stack.base}/dashboard/queues/{queue}")
        await expect(page).to_have_url(f"{stack.base}/dashboard/login")
        await page.get_by_label("API token").fill("not-the-token")
        await page.get_by_role("button", name="Log in").click()
        await expect(page.get_by_role("alert").filter(has_text="wrong token")).to_be_visible()
        await page.screenshot(path=artifacts / "login.png")

        # Read-only: sees the queue, no action button anywhere in the page body; the API refuses its writes.
        await page.get_by_label("API token").fill(READ)
        await page.get_by_role("button", name="Log in").click()
        await expect(page.locator(".who")).to_have_text("read-only")
        await page.goto(f"{stack.base}/dashboard/queues/{queue}")
        await expect(page.locator("h1")).to_contain_text(queue)
        await expect(page.locator('main form[method="post"]')).to_have_count(0)
        refused = await page.request.post(
            f"{stack.base}/api/v1/queues/{queue}/pause", headers={"Authorization": f"Bearer {READ}"}
        )
        assert refused.status == 403
        assert (await page.request.get(f"{stack.base}/api/v1/queues", headers={"Authorization": f"Bearer {READ}"})).ok

        # Admin: the buttons are there and work.
        await page.get_by_role("button", name="Log out").click()
        await expect(page).to_have_url(f"{stack.base}/dashboard/login")
        await page.get_by_label("API token").fill(TOKEN)
        await page.get_by_role("button", name="Log in").click()
        await expect(page.locator(".who")).to_have_text("admin")
        await page.goto(f"{stack.base}/dashboard/queues/{queue}")
        await page.get_by_role("button", name="Pause queue").click()
        await expect(page.locator('[data-field="paused"]')).to_have_text("paused")
        await page.get_by_role("button", name="Resume queue").click()
        await expect(page.locator('[data-field="paused"]')).to_have_text("running")
        cookie = next(c for c in await page.context.cookies() if c["name"] == "tickr_session")
        assert cookie["httpOnly"] is True
        assert cookie["sameSite"] == "Strict"
        assert TOKEN not in cookie["value"]
        console.check()
