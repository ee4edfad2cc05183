"""With TICKR_API_TOKEN the dashboard needs a login (HttpOnly, SameSite=Strict cookie); a read-only token reads only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from tests.api.conftest import make_dead
from tests.dashboard.test_pages import csrf_of
from tests.history.rows import create_sqlite_schema
from tickr.api import create_app
from tickr.config import Settings

TOKEN, READ = "admin-secret-token", "read-only-token"


@pytest.fixture
def secured_settings(redis_url: str, tmp_path: Path) -> Settings:
    create_sqlite_schema(tmp_path)
    return Settings(redis_url=redis_url, data_dir=tmp_path, api_token=SecretStr(TOKEN), api_read_token=SecretStr(READ))


@pytest.fixture
async def secured_app(secured_settings: Settings) -> AsyncIterator[FastAPI]:
    app = create_app(secured_settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def secured(secured_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=secured_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://tickr.test") as http:
        yield http


async def login(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/dashboard/login", data={"token": token})


async def test_pages_need_a_login_and_a_wrong_token_is_refused(secured: httpx.AsyncClient) -> None:
    page = await secured.get("/dashboard")
    assert page.status_code == 303
    assert page.headers["location"] == "/dashboard/login"
    assert (await secured.get("/dashboard/login")).status_code == 200
    wrong = await login(secured, "guess")
    assert wrong.status_code == 401
    assert "tickr_session" not in wrong.headers.get("set-cookie", "")
    assert (await secured.post("/dashboard/queues/x/pause", data={})).status_code == 401


async def test_login_sets_a_strict_httponly_cookie_that_is_not_the_token(secured: httpx.AsyncClient) -> None:
    response = await login(secured, TOKEN)
    assert response.status_code == 303
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert TOKEN not in response.headers["set-cookie"]
    assert (await secured.get("/dashboard")).status_code == 200
    # Only on the dashboard's pages (their forms carry a CSRF token): the API's routes need the bearer token,
    # so a request a browser sends with the cookie by itself authorises nothing there.
    assert (await secured.get("/api/v1/queues")).status_code == 401
    assert (await secured.post("/api/v1/queues/x/pause")).status_code == 401


async def test_admin_actions_need_the_session_csrf_token(
    secured: httpx.AsyncClient, secured_app: FastAPI, queue: str
) -> None:
    await make_dead(secured_app.state.tickr.app.store, queue)
    await login(secured, TOKEN)
    here = f"/dashboard/queues/{queue}"
    token = csrf_of((await secured.get(here)).text)
    refused = await secured.post(f"{here}/pause", data={"csrf": "0" * 64, "next": here})
    assert refused.status_code == 403
    done = await secured.post(f"{here}/pause", data={"csrf": token, "next": here})
    assert done.status_code == 303
    assert (await secured_app.state.tickr.app.store.queues.stats([queue]))[0].paused


async def test_read_only_token_sees_no_buttons_and_writes_are_refused(
    secured: httpx.AsyncClient, queue: str, redis_url: str
) -> None:
    response = await login(secured, READ)
    assert response.status_code == 303
    await secured.post(
        "/api/v1/jobs", json={"type": "noop", "queue": queue}, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    page = await secured.get(f"/dashboard/queues/{queue}")
    assert page.status_code == 200
    assert "read-only" in page.text
    assert 'method="post"' not in page.text.split("</header>", 1)[1]
    pause = await secured.post(f"/dashboard/queues/{queue}/pause", data={"csrf": "x"})
    assert pause.status_code == 403
    secured.cookies.clear()
    bearer = {"Authorization": f"Bearer {READ}"}
    assert (await secured.get("/api/v1/queues", headers=bearer)).status_code == 200
    write = await secured.post(f"/api/v1/queues/{queue}/pause", headers=bearer)
    assert write.status_code == 403
    assert write.headers["content-type"].startswith("application/problem+json")
    enqueue = await secured.post("/api/v1/jobs", json={"type": "noop", "queue": queue}, headers=bearer)
    assert enqueue.status_code == 403


async def test_read_only_token_cannot_delete_a_dead_job(
    secured: httpx.AsyncClient, secured_app: FastAPI, queue: str
) -> None:
    store = secured_app.state.tickr.app.store
    dead_id = await make_dead(store, queue)
    await login(secured, READ)
    page = await secured.get(f"/dashboard/jobs/{dead_id}")
    assert page.status_code == 200
    assert f"/dashboard/jobs/{dead_id}/delete" not in page.text
    refused = await secured.post(f"/dashboard/jobs/{dead_id}/delete", data={"csrf": "x", "confirm": "yes"})
    assert refused.status_code == 403
    assert (await store.jobs.get_job(dead_id)).status.value == "dead"
