"""System routes: health (Redis reachable?) and the live workers."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from tickr.api.deps import StateDep, WorkersDep
from tickr.api.views import HealthOut, WorkerListOut, WorkerOut, problem_responses

HEALTH_TIMEOUT_SECONDS = 2.0

router = APIRouter(tags=["system"])
health_router = APIRouter(tags=["system"])


def tickr_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tickr")
    except PackageNotFoundError:
        return "0+unknown"


UNAVAILABLE: dict[int | str, dict[str, Any]] = {503: {"model": HealthOut, "description": "Redis is unavailable"}}


@health_router.get("/health", response_model=HealthOut, responses=UNAVAILABLE)
@health_router.get("/api/v1/health", response_model=HealthOut, responses=UNAVAILABLE)
async def health(state: StateDep) -> JSONResponse:
    """``ok`` when Redis answers within 2 s; 503 ``unavailable`` otherwise. Never needs a token.

    ``history`` tells how far the SQL history is behind (read from the event streams, so it is right even
    while the history database is down).
    """
    history = None
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT_SECONDS):
            reachable = await state.app.store.ping()
            if state.settings.history:
                history = (await state.app.store.events.lag()).to_dict()
    except Exception:  # any failure to reach the store means "unavailable"
        reachable = False
    body = HealthOut(
        status="ok" if reachable else "unavailable",
        redis="ok" if reachable else "unavailable",
        version=tickr_version(),
        uptime_seconds=state.uptime_seconds,
        history=history,
    )
    return JSONResponse(body.model_dump(), status_code=200 if reachable else 503)


@router.get("/workers", responses=problem_responses())
async def list_workers(workers: WorkersDep) -> WorkerListOut:
    """Workers whose heartbeat has not expired, most recent first."""
    return WorkerListOut(workers=[WorkerOut.of(worker) for worker in await workers.live()])
