"""Every dashboard page renders from real Redis (in process, no browser); actions change what they say."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import create_engine, insert

from tests.api.conftest import make_dead
from tests.history.rows import job_row
from tickr.api import create_app
from tickr.config import Settings
from tickr.core.errors import JobNotFound
from tickr.core.factory import new_job
from tickr.core.job import JobState
from tickr.history.database import SQLITE_FILE
from tickr.history.schema import jobs
from tickr.store.store import RedisStore

DAY = 86_400_000
CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')


def store_of(api: FastAPI) -> RedisStore:
    return api.state.tickr.app.store


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


async def test_root_redirects_to_the_dashboard(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 307
    assert response.headers["location"] == "/dashboard"


async def test_overview_lists_queues_with_counts(client: httpx.AsyncClient, api: FastAPI, queue: str) -> None:
    store = store_of(api)
    await store.enqueue(new_job("noop", {}, queue=queue))
    response = await client.get("/dashboard")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    row = re.search(rf'<tr data-queue="{queue}">(.*?)</tr>', response.text, re.S)
    assert row, response.text[:2000]
    assert '<td class="n" data-col="queued">1</td>' in row.group(1)


async def test_live_refresh_returns_json_regions(client: httpx.AsyncClient, api: FastAPI, queue: str) -> None:
    await store_of(api).enqueue(new_job("noop", {}, queue=queue))
    response = await client.get("/dashboard", headers={"X-Tickr-Live": "1"})
    body = response.json()
    assert body["ok"] is True
    assert f'data-queue="{queue}"' in body["regions"]["live"]
    assert "<html" not in body["regions"]["live"]


async def test_assets_have_a_content_hash_and_long_cache(client: httpx.AsyncClient) -> None:
    html = (await client.get("/dashboard")).text
    for name in ("dashboard.css", "dashboard.js"):
        match = re.search(rf"/dashboard/static/([0-9a-f]{{12}})/{name}", html)
        assert match, name
        asset = await client.get(match.group(0))
        assert asset.status_code == 200
        assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
        stale = await client.get(f"/dashboard/static/000000000000/{name}")
        assert stale.headers["cache-control"] == "no-cache"


async def test_queue_page_pause_resume_and_dlq_replay(client: httpx.AsyncClient, api: FastAPI, queue: str) -> None:
    store = store_of(api)
    dead_id = await make_dead(store, queue, "flaky", "kaput")
    page = await client.get(f"/dashboard/queues/{queue}")
    assert page.status_code == 200
    assert dead_id in page.text
    assert "kaput" in page.text
    token = csrf_of(page.text)
    here = f"/dashboard/queues/{queue}"

    paused = await client.post(f"{here}/pause", data={"csrf": token, "next": here})
    assert paused.status_code == 303
    assert (await store.queues.stats([queue]))[0].paused
    await client.post(f"{here}/resume", data={"csrf": token, "next": here})
    assert not (await store.queues.stats([queue]))[0].paused

    replayed = await client.post(f"{here}/dead/replay", data={"csrf": token, "next": here, "id": dead_id})
    assert "replayed+1+dead+job" in replayed.headers["location"]
    assert (await store.jobs.get_job(dead_id)).status is JobState.QUEUED


async def test_purge_needs_confirmation_and_csrf(client: httpx.AsyncClient, api: FastAPI, queue: str) -> None:
    store = store_of(api)
    await make_dead(store, queue)
    here = f"/dashboard/queues/{queue}"
    token = csrf_of((await client.get(here)).text)
    refused = await client.post(f"{here}/dead/purge", data={"csrf": "nope", "confirm": "yes"})
    assert refused.status_code == 403
    unconfirmed = await client.post(f"{here}/dead/purge", data={"csrf": token, "next": here})
    assert "not+confirmed" in unconfirmed.headers["location"]
    assert (await store.queues.stats([queue]))[0].dead == 1
    await client.post(f"{here}/dead/purge", data={"csrf": token, "next": here, "confirm": "yes"})
    assert (await store.queues.stats([queue]))[0].dead == 0


async def test_unknown_queue_and_job_are_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/dashboard/queues/no-such-queue-xyz")).status_code == 404
    assert (await client.get("/dashboard/queues/bad{name}")).status_code == 404
    assert (await client.get("/dashboard/jobs/no-such-job")).status_code == 404


async def test_jobs_list_filters_by_type_and_state(client: httpx.AsyncClient, api: FastAPI, queue: str) -> None:
    store = store_of(api)
    a, b = new_job("alpha", {}, queue=queue), new_job("beta", {}, queue=queue)
    await store.enqueue(a)
    await store.enqueue(b)
    page = (await client.get("/dashboard/jobs", params={"queue": queue, "type": "alpha"})).text
    assert a.id in page
    assert b.id not in page
    dead = (await client.get("/dashboard/jobs", params={"queue": queue, "state": "dead"})).text
    assert a.id not in dead
    assert "No job matches." in dead


async def test_jobs_list_bad_time_filter_says_so(client: httpx.AsyncClient) -> None:
    response = await client.get("/dashboard/jobs", params={"since": "yesterday-ish"})
    assert response.status_code == 303
    assert "msg=" in response.headers["location"]


async def test_job_page_shows_payload_error_and_state_actions(
    client: httpx.AsyncClient, api: FastAPI, queue: str
) -> None:
    store = store_of(api)
    dead_id = await make_dead(store, queue, "flaky", "kaput")
    page = (await client.get(f"/dashboard/jobs/{dead_id}")).text
    assert "&#34;n&#34;: 1" in page or '"n": 1' in page
    assert "Traceback (most recent call last)" in page
    assert f"/dashboard/jobs/{dead_id}/replay" in page
    assert f"/dashboard/jobs/{dead_id}/cancel" not in page

    queued = new_job("noop", {}, queue=queue)
    await store.enqueue(queued)
    page = (await client.get(f"/dashboard/jobs/{queued.id}")).text
    assert f"/dashboard/jobs/{queued.id}/cancel" in page
    assert f"/dashboard/jobs/{queued.id}/replay" not in page
    here = f"/dashboard/jobs/{queued.id}"
    await client.post(f"{here}/cancel", data={"csrf": csrf_of(page), "next": here})
    assert (await store.jobs.get_job(queued.id)).status is JobState.CANCELLED


async def test_workers_and_schedules_pages_render(client: httpx.AsyncClient, api: FastAPI, queue: str) -> None:
    store = store_of(api)
    await store.workers.register("w-dash-test", [queue], 8, 0, 30)
    try:
        workers = await client.get("/dashboard/workers")
        assert workers.status_code == 200
        assert "w-dash-test" in workers.text
        assert '<td class="n">8</td>' in workers.text
    finally:
        await store.workers.deregister("w-dash-test", [queue])
    schedules = await client.get("/dashboard/schedules")
    assert schedules.status_code == 200


async def test_every_page_has_a_live_region(client: httpx.AsyncClient, api: FastAPI, queue: str) -> None:
    dead_id = await make_dead(store_of(api), queue)
    for path in ("", f"/queues/{queue}", "/jobs", f"/jobs/{dead_id}", "/workers", "/schedules"):
        response = await client.get(f"/dashboard{path}", headers={"X-Tickr-Live": "1"})
        assert response.status_code == 200, path
        assert response.json()["ok"] is True, path
        assert response.json()["regions"]["live"].strip(), path


async def test_redis_unreachable_shows_a_banner(tmp_path: Path) -> None:
    settings = Settings(redis_url="redis://127.0.0.1:1/0", data_dir=tmp_path, history=False)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tickr.test") as http:
            page = await http.get("/dashboard")
            assert page.status_code == 503
            assert '<div id="banner" class="banner" role="alert" >Redis cannot be reached' in page.text
            live = await http.get("/dashboard", headers={"X-Tickr-Live": "1"})
            assert live.status_code == 200
            assert live.json()["ok"] is False


async def test_history_off_says_so_on_the_jobs_and_job_pages(redis_url: str, tmp_path: Path, queue: str) -> None:
    app = create_app(Settings(redis_url=redis_url, data_dir=tmp_path, history=False))
    async with app.router.lifespan_context(app):
        dead_id = await make_dead(store_of(app), queue)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tickr.test") as http:
            jobs = await http.get("/dashboard/jobs", params={"text": "boom"})
            assert "History is off" in jobs.text
            job = await http.get(f"/dashboard/jobs/{dead_id}")
            assert "attempts are not recorded" in job.text


async def test_dlq_replay_and_purge_by_error_text(client: httpx.AsyncClient, api: FastAPI, queue: str) -> None:
    store = store_of(api)
    timeout_id = await make_dead(store, queue, "fetch", "upstream Timed Out after 30s")
    other_id = await make_dead(store, queue, "fetch", "404 not found")
    here = f"/dashboard/queues/{queue}"
    page = await client.get(here, params={"error": "timed out"})
    assert timeout_id in page.text
    assert other_id not in page.text
    token = csrf_of(page.text)
    none = await client.post(f"{here}/dead/replay", data={"csrf": token, "next": here, "error": "no such text"})
    assert "no+dead+job+has+that+error" in none.headers["location"]
    await client.post(f"{here}/dead/replay", data={"csrf": token, "next": here, "error": "timed out"})
    assert (await store.jobs.get_job(timeout_id)).status is JobState.QUEUED
    assert (await store.jobs.get_job(other_id)).status is JobState.DEAD
    await client.post(f"{here}/dead/purge", data={"csrf": token, "next": here, "error": "404", "confirm": "yes"})
    assert (await store.queues.stats([queue]))[0].dead == 0


async def test_jobs_text_search_reads_the_history(
    client: httpx.AsyncClient, api_settings: Settings, queue: str
) -> None:
    now = int(time.time() * 1000)
    engine = create_engine(f"sqlite:///{api_settings.data_dir / SQLITE_FILE}")
    with engine.begin() as conn:
        conn.execute(
            insert(jobs),
            [
                job_row(
                    id="old-match", queue=queue, status="dead", error_message="disk full", created_at=now - 3 * DAY
                ),
                job_row(id="new-match", queue=queue, status="dead", error_message="Disk full", created_at=now - 1000),
                job_row(id="no-match", queue=queue, status="dead", error_message="timeout", created_at=now - 1000),
            ],
        )
    engine.dispose()
    page = (await client.get("/dashboard/jobs", params={"text": "disk full"})).text
    assert "new-match" in page
    assert "old-match" not in page  # a text search looks at the last day unless "since" says otherwise
    assert "no-match" not in page
    assert "Text searches the last 24h" in page
    wider = (await client.get("/dashboard/jobs", params={"text": "disk full", "since": "7d"})).text
    assert "old-match" in wider
    assert "new-match" in wider
    chart = (await client.get("/dashboard")).text
    assert '<svg class="chart"' in chart


async def test_schedules_page_lists_next_fires_and_pauses(client: httpx.AsyncClient, queue: str) -> None:
    created = await client.post("/api/v1/jobs", json={"type": "noop", "queue": queue, "cron": "0 9 * * 1-5"})
    assert created.status_code == 201, created.text
    schedule_id = created.json()["id"]
    try:
        page = await client.get("/dashboard/schedules")
        row = re.search(rf'<tr id="s-{schedule_id}"(.*?)</tr>', page.text, re.S)
        assert row, page.text[-3000:]
        assert "0 9 * * 1-5" in row.group(1)
        assert "At 09:00, Monday through Friday" in row.group(1)
        assert row.group(1).count("<time datetime=") >= 5
        assert f"/dashboard/jobs?schedule={schedule_id}" in row.group(1)
        here = "/dashboard/schedules"
        await client.post(f"{here}/{schedule_id}/pause", data={"csrf": csrf_of(page.text), "next": here})
        assert (await client.get(f"/api/v1/jobs/{schedule_id}")).json()["status"] == "paused"
        runs = await client.get("/dashboard/jobs", params={"schedule": schedule_id, "until": "1s"})
        assert runs.status_code == 200
        assert "From the SQL history" in runs.text
    finally:
        await client.delete(f"/api/v1/jobs/{schedule_id}")


async def test_jobs_list_filters_by_priority(client: httpx.AsyncClient, api: FastAPI, queue: str) -> None:
    store = store_of(api)
    low, high = new_job("noop", {}, queue=queue, priority="low"), new_job("noop", {}, queue=queue, priority="high")
    await store.enqueue(low)
    await store.enqueue(high)
    page = (await client.get("/dashboard/jobs", params={"queue": queue, "priority": "high"})).text
    assert high.id in page
    assert low.id not in page
    assert "<option selected>high</option>" in page
    bad = await client.get("/dashboard/jobs", params={"priority": "urgent"})
    assert bad.status_code == 303
    assert "msg=" in bad.headers["location"]


async def test_jobs_list_sorts_oldest_first_from_the_history(
    client: httpx.AsyncClient, api_settings: Settings, queue: str
) -> None:
    now = int(time.time() * 1000)
    engine = create_engine(f"sqlite:///{api_settings.data_dir / SQLITE_FILE}")
    with engine.begin() as conn:
        conn.execute(
            insert(jobs),
            [job_row(id=f"sorted-{n:02d}", queue=queue, priority="low", created_at=now - n * 1000) for n in range(55)]
            + [job_row(id="sorted-high", queue=queue, priority="high", created_at=now - 99_000)],
        )
    engine.dispose()
    params = {"queue": queue, "priority": "low", "order": "asc"}
    page = (await client.get("/dashboard/jobs", params=params)).text
    shown = re.findall(r'<tr data-job="(sorted-[^"]+)"', page)
    assert shown == [f"sorted-{n:02d}" for n in range(54, 4, -1)]  # oldest first, a page of 50, low only
    assert "oldest first" in page
    # the next page and the header toggle keep the other filters
    next_link = re.search(r'id="next-page" href="([^"]+)"', page)
    assert next_link
    rest = (await client.get(next_link.group(1).replace("&amp;", "&"))).text
    assert re.findall(r'<tr data-job="(sorted-[^"]+)"', rest) == [f"sorted-{n:02d}" for n in range(4, -1, -1)]
    toggle = re.search(r'id="sort-created" href="([^"]+)"', page)
    assert toggle
    href = toggle.group(1).replace("&amp;", "&")
    assert f"queue={queue}" in href and "priority=low" in href and "order=desc" in href
    newest = (await client.get(href)).text
    assert "sorted-high" not in newest
    assert '<tr data-job="sorted-00"' in newest
    # a cursor of one order does not continue the other
    cursor = re.search(r"cursor=([^&\"]+)", next_link.group(1))
    assert cursor
    mismatch = await client.get("/dashboard/jobs", params={"queue": queue, "cursor": cursor.group(1), "since": "1d"})
    assert mismatch.status_code == 303
    assert "cursor" in mismatch.headers["location"]


async def test_job_page_deletes_a_dead_job_after_confirmation(
    client: httpx.AsyncClient, api: FastAPI, queue: str
) -> None:
    store = store_of(api)
    dead_id = await make_dead(store, queue, "flaky", "kaput")
    here = f"/dashboard/jobs/{dead_id}"
    page = (await client.get(here)).text
    assert f'action="{here}/delete"' in page
    token = csrf_of(page)
    refused = await client.post(f"{here}/delete", data={"csrf": "nope", "confirm": "yes"})
    assert refused.status_code == 403
    unconfirmed = await client.post(f"{here}/delete", data={"csrf": token, "next": here})
    assert "not+confirmed" in unconfirmed.headers["location"]
    assert (await store.jobs.get_job(dead_id)).status is JobState.DEAD
    deleted = await client.post(
        f"{here}/delete", data={"csrf": token, "next": f"/dashboard/queues/{queue}", "confirm": "yes"}
    )
    assert deleted.headers["location"].startswith(f"/dashboard/queues/{queue}?msg=")
    assert "deleted" in deleted.headers["location"]
    assert (await store.queues.stats([queue]))[0].dead == 0
    with pytest.raises(JobNotFound):
        await store.jobs.get_job(dead_id)

    queued = new_job("noop", {}, queue=queue)
    await store.enqueue(queued)
    page = (await client.get(f"/dashboard/jobs/{queued.id}")).text
    assert f"/dashboard/jobs/{queued.id}/delete" not in page  # only for a dead job
    kept = await client.post(f"/dashboard/jobs/{queued.id}/delete", data={"csrf": token, "confirm": "yes"})
    assert "only+a+dead+job" in kept.headers["location"]
    assert (await store.jobs.get_job(queued.id)).status is JobState.QUEUED
