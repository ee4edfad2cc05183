"""Dependencies of the routes: the process-wide ``tickr.App`` (made lazily), its admin views, schedules and history."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, Request

from tickr.app import App
from tickr.config import Settings
from tickr.history.database import HistoryDB
from tickr.history.queries import HistoryQueries
from tickr.scheduler.manager import Schedules
from tickr.store.job_admin import JobAdmin
from tickr.store.queue_admin import QueueAdmin
from tickr.store.workers import WorkerRegistry


class ApiState:
    """One per API process: the settings, the ``App`` (given, or made on first use), the SQL history (when
    ``TICKR_HISTORY`` is on; made on first use, or set by the caller, who then closes it) and the start time."""

    def __init__(self, settings: Settings, app: App | None = None) -> None:
        self.settings = settings
        self._app = app
        self._owned = app is None
        self._history: HistoryQueries | None = None
        self._history_owned = True
        self.started = time.monotonic()

    @property
    def app(self) -> App:
        if self._app is None:
            self._app = App(settings=self.settings)
        return self._app

    @property
    def history(self) -> HistoryQueries | None:
        """The SQL history queries, or None when history is off. Making them does no I/O."""
        if self._history is None and self._history_owned and self.settings.history:
            self._history = HistoryQueries(HistoryDB.from_settings(self.settings))
        return self._history

    @history.setter
    def history(self, queries: HistoryQueries | None) -> None:
        self._history, self._history_owned = queries, False

    def start(self) -> None:
        """Called by the lifespan: make the App now (no I/O; Redis connects on first use)."""
        self.started = time.monotonic()
        _ = self.app

    async def close(self) -> None:
        """Close the App's connections, unless the caller passed it in (then it is theirs to close)."""
        if self._owned and self._app is not None:
            await self._app.close()
            self._app = None
        if self._history_owned and self._history is not None:
            await self._history.close()
            self._history = None

    @property
    def uptime_seconds(self) -> float:
        return round(time.monotonic() - self.started, 3)


# Async although they do no I/O: FastAPI runs a plain ``def`` dependency in its thread pool, a thread hop per
# dependency per request (three for POST /jobs), which cost more than the whole enqueue.
async def get_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.tickr
    return state


async def get_tickr(state: Annotated[ApiState, Depends(get_state)]) -> App:
    return state.app


async def get_inspector(tickr: Annotated[App, Depends(get_tickr)]) -> JobAdmin:
    return tickr.store.jobs


async def get_queues(tickr: Annotated[App, Depends(get_tickr)]) -> QueueAdmin:
    return tickr.store.queues


async def get_workers(tickr: Annotated[App, Depends(get_tickr)]) -> WorkerRegistry:
    return tickr.store.workers


async def get_history(state: Annotated[ApiState, Depends(get_state)]) -> HistoryQueries | None:
    return state.history


async def get_schedules(tickr: Annotated[App, Depends(get_tickr)]) -> Schedules:
    return Schedules(tickr)


StateDep = Annotated[ApiState, Depends(get_state)]
TickrDep = Annotated[App, Depends(get_tickr)]
InspectorDep = Annotated[JobAdmin, Depends(get_inspector)]
QueuesDep = Annotated[QueueAdmin, Depends(get_queues)]
SchedulesDep = Annotated[Schedules, Depends(get_schedules)]
WorkersDep = Annotated[WorkerRegistry, Depends(get_workers)]
HistoryDep = Annotated[HistoryQueries | None, Depends(get_history)]
