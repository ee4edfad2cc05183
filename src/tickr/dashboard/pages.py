"""The dashboard's routes: pages (HTML, or JSON regions for live refresh), login, assets; actions are in actions.py."""

from __future__ import annotations

import time
from collections.abc import Awaitable

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from tickr.config import Settings
from tickr.core.errors import StoreUnavailable, ValidationError
from tickr.dashboard import data
from tickr.dashboard.actions import add_actions
from tickr.dashboard.assets import IMMUTABLE
from tickr.dashboard.security import SESSION_COOKIE, session_role, session_value
from tickr.dashboard.web import PREFIX, Context, Dashboard, back, backend, form_of
from tickr.history.queries import HistoryUnavailable


def dashboard_router(settings: Settings) -> APIRouter:
    """The dashboard's routes under ``/dashboard``."""
    dash = Dashboard(settings)
    router = APIRouter(prefix=PREFIX, include_in_schema=False)
    _add_pages(router, dash)
    add_actions(router, dash)
    _add_login(router, dash)
    return router


async def _page(dash: Dashboard, request: Request, template: str, load: Awaitable[Context | None]) -> Response:
    """Render ``template`` with what ``load`` reads: a banner page when Redis is down, 404 for nothing."""
    try:
        ctx = await load
    except (StoreUnavailable, HistoryUnavailable) as exc:
        return dash.unavailable(request, exc)
    except ValidationError as exc:
        return back(request.url.path, str(exc))
    if ctx is None:
        return HTMLResponse(dash.env.get_template("missing.html").render(prefix=PREFIX, asset=dash.asset_url), 404)
    return dash.render(request, template, ctx, ("live",))


def _add_pages(router: APIRouter, dash: Dashboard) -> None:
    @router.get("/static/{digest}/{name}")
    async def asset(digest: str, name: str) -> Response:
        found = dash.assets.get(name)
        if found is None:
            return Response(status_code=404)
        cache = IMMUTABLE if digest == found.digest else "no-cache"
        return Response(found.body, media_type=found.media_type, headers={"Cache-Control": cache})

    @router.get("")
    async def overview(request: Request) -> Response:
        return await _page(dash, request, "overview.html", data.overview(backend(request)))

    @router.get("/queues/{queue}")
    async def queue(request: Request, queue: str) -> Response:
        p = request.query_params
        load = data.queue_page(
            backend(request), queue, p.get("type") or None, p.get("cursor") or None, p.get("error", "").strip()
        )
        return await _page(dash, request, "queue.html", load)

    @router.get("/jobs")
    async def jobs(request: Request) -> Response:
        p = request.query_params
        query = data.JobQuery(**{k: p.get(k, "").strip() for k in data.JobQuery.__dataclass_fields__})
        now = int(time.time() * 1000)
        return await _page(dash, request, "jobs.html", data.jobs_page(backend(request), query, now))

    @router.get("/jobs/{job_id}")
    async def job(request: Request, job_id: str) -> Response:
        return await _page(dash, request, "job.html", data.job_page(backend(request), job_id))

    @router.get("/workers")
    async def workers(request: Request) -> Response:
        return await _page(dash, request, "workers.html", data.workers_page(backend(request)))

    @router.get("/schedules")
    async def schedules(request: Request) -> Response:
        return await _page(dash, request, "schedules.html", data.schedules_page(backend(request)))


def _add_login(router: APIRouter, dash: Dashboard) -> None:
    @router.get("/login")
    async def loginform_of(request: Request) -> Response:
        html = dash.env.get_template("login.html").render(prefix=PREFIX, asset=dash.asset_url, error="")
        return HTMLResponse(html)

    @router.post("/login")
    async def login(request: Request) -> Response:
        presented = (await form_of(request)).get("token", "")
        if dash.token is None:
            return RedirectResponse(PREFIX, status_code=303)
        value = session_value(presented)
        if session_role(value, dash.token, dash.read_token) is None:
            html = dash.env.get_template("login.html").render(prefix=PREFIX, asset=dash.asset_url, error="wrong token")
            return HTMLResponse(html, status_code=401)
        response = RedirectResponse(PREFIX, status_code=303)
        response.set_cookie(SESSION_COOKIE, value, httponly=True, samesite="strict", path="/")
        return response

    @router.post("/logout")
    async def logout() -> Response:
        response = RedirectResponse(f"{PREFIX}/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response
