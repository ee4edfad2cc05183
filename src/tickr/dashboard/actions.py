"""The dashboard's form actions (POST, CSRF token checked, refused to a read-only session), then back to the page."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from tickr.core.errors import InvalidState, JobNotFound, StoreUnavailable
from tickr.core.job import JobState
from tickr.dashboard import data
from tickr.dashboard.security import Role, csrf_ok
from tickr.dashboard.web import PREFIX, Dashboard, back, backend, form_of
from tickr.scheduler.manager import Schedules

Run = Callable[[data.Backend, dict[str, str], dict[str, str]], Awaitable[str]]


def add_actions(router: APIRouter, dash: Dashboard) -> None:
    for path, run in ACTIONS.items():
        router.add_api_route(path, _handler(dash, run), methods=["POST"])


def _handler(dash: Dashboard, run: Run) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        form = await form_of(request)
        target = form.get("next") or PREFIX
        if not target.startswith(PREFIX):
            target = PREFIX
        if dash.role(request) is not Role.ADMIN:
            return HTMLResponse("read-only session: changes are refused", status_code=403)
        if not csrf_ok(dash.secret, dash.session(request), form.get("csrf")):
            return HTMLResponse("missing or wrong CSRF token", status_code=403)
        try:
            msg = await run(backend(request), dict(request.path_params), form)
        except (JobNotFound, InvalidState) as exc:
            msg = str(exc)
        except StoreUnavailable as exc:
            return dash.unavailable(request, exc)
        return back(target, msg)

    return handle


async def pause(b: data.Backend, p: dict[str, str], _: dict[str, str]) -> str:
    await b.app.store.queues.pause(p["queue"])
    return f"queue {p['queue']} paused"


async def resume(b: data.Backend, p: dict[str, str], _: dict[str, str]) -> str:
    await b.app.store.queues.resume(p["queue"])
    return f"queue {p['queue']} resumed"


async def replay_dead(b: data.Backend, p: dict[str, str], f: dict[str, str]) -> str:
    job_type = f.get("type") or None
    ids = [f["id"]] if f.get("id") else None
    if ids is None and f.get("error"):
        ids = await data.dead_ids_with_error(b, p["queue"], job_type, f["error"])
        if not ids:
            return "no dead job has that error"
    n = await b.app.store.queues.dead_replay(p["queue"], job_type=job_type, ids=ids)
    return f"replayed {n} dead job{'s' * (n != 1)}"


async def purge_dead(b: data.Backend, p: dict[str, str], f: dict[str, str]) -> str:
    if f.get("confirm") != "yes":
        return "purge not confirmed: tick the box"
    job_type = f.get("type") or None
    ids = await data.dead_ids_with_error(b, p["queue"], job_type, f["error"]) if f.get("error") else None
    if ids == []:
        return "no dead job has that error"
    n = await b.app.store.queues.dead_purge(p["queue"], job_type=job_type, ids=ids)
    return f"purged {n} dead job{'s' * (n != 1)}"


async def cancel(b: data.Backend, p: dict[str, str], _: dict[str, str]) -> str:
    return f"job {await b.app.store.jobs.cancel(p['job_id'])}"


async def replay(b: data.Backend, p: dict[str, str], _: dict[str, str]) -> str:
    return f"job {await b.app.store.jobs.replay(p['job_id'])}"


async def delete_dead(b: data.Backend, p: dict[str, str], f: dict[str, str]) -> str:
    """A dead job removed for good, from the DLQ and Redis (the DLQ purge of this one id)."""
    if f.get("confirm") != "yes":
        return "delete not confirmed: tick the box"
    job = await b.app.store.jobs.get_job(p["job_id"])
    if job.status is not JobState.DEAD:
        return f"job {job.id} is {job.status.value}: only a dead job can be deleted"
    n = await b.app.store.queues.dead_purge(job.queue, ids=[job.id])
    return f"job {job.id} deleted" if n else f"job {job.id} is no longer dead: not deleted"


async def pause_schedule(b: data.Backend, p: dict[str, str], _: dict[str, str]) -> str:
    await Schedules(b.app).pause(p["schedule_id"])
    return "schedule paused"


async def resume_schedule(b: data.Backend, p: dict[str, str], _: dict[str, str]) -> str:
    await Schedules(b.app).resume(p["schedule_id"])
    return "schedule resumed"


ACTIONS: dict[str, Run] = {
    "/queues/{queue}/pause": pause,
    "/queues/{queue}/resume": resume,
    "/queues/{queue}/dead/replay": replay_dead,
    "/queues/{queue}/dead/purge": purge_dead,
    "/jobs/{job_id}/cancel": cancel,
    "/jobs/{job_id}/replay": replay,
    "/jobs/{job_id}/delete": delete_dead,
    "/schedules/{schedule_id}/pause": pause_schedule,
    "/schedules/{schedule_id}/resume": resume_schedule,
}
