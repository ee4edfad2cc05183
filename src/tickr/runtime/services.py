"""The composition root: the one place that assembles a process's services, for ``tickr worker``, ``tickr up``,
``tickr scheduler`` and ``tickr api``, and runs them until a stop signal.

Start order: scheduler, API, then the worker (which starts its own services). Stop order: the worker first
(it stops fetching, lets in-flight jobs finish within the grace period, hands the rest back), then the API,
then the scheduler, then the Redis connections. A first SIGINT/SIGTERM is graceful, a second one skips the
worker's grace period. ``tickr history`` (``run_history``) runs the SQL history sink alone; ``tickr up`` runs
it as a child process (``runtime/history.py``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from tickr.api.server import ApiService
from tickr.app import App
from tickr.config import Settings
from tickr.lifecycle import ServiceProtocol, stop_all
from tickr.metrics.exposition import MetricsEndpoint
from tickr.runtime.history import HistoryService, lower_priority, open_history
from tickr.runtime.signals import on_stop_signals
from tickr.scheduler.service import SchedulerService
from tickr.worker.worker import Worker, WorkerConfig

log = logging.getLogger("tickr")


@dataclass(frozen=True, slots=True)
class ProcessPlan:
    """What one process runs beside (or instead of) its worker."""

    scheduler: bool = True  # leaderless: every worker may run one
    api: Settings | None = None  # serve the HTTP API with these settings
    metrics: tuple[str, int] | None = None  # serve /metrics on (host, port) (with an API: its /metrics instead)


class ProcessServices:
    """A worker and its companion services, started and stopped in the documented order."""

    def __init__(self, app: App, config: WorkerConfig, plan: ProcessPlan) -> None:
        self.app = app
        self.worker = Worker(app, config)
        companions: list[ServiceProtocol] = []
        if plan.scheduler and not config.burst:
            companions.append(SchedulerService(app))
        if plan.api is not None:
            companions.append(ApiService(plan.api, app))  # its /metrics serves this process's counters too
        elif plan.metrics is not None:
            companions.append(MetricsEndpoint(*plan.metrics))
        self.companions = companions

    def stop(self) -> None:
        """Ask everything to stop (a second call skips the worker's grace period)."""
        self.worker.stop()

    async def run(self) -> None:
        """Run until the worker stops (a stop request, or the queues drained in burst mode)."""
        try:
            for service in self.companions:
                await service.start()
            await self.worker.run()  # returns at once (after a clean shutdown) if stop() came first
        finally:
            await stop_all(list(reversed(self.companions)))


async def run_worker_process(app: App, config: WorkerConfig, plan: ProcessPlan | None = None) -> None:
    """``tickr worker`` (one process): the worker and its companions until SIGINT/SIGTERM; closes ``app``."""
    services = ProcessServices(app, config, plan or ProcessPlan())
    try:
        with on_stop_signals(services.stop):
            await services.run()
    finally:
        await app.close()


async def run_scheduler(app: App) -> None:
    """``tickr scheduler``: fire schedules until SIGINT/SIGTERM; closes ``app``."""
    stop = asyncio.Event()
    scheduler = SchedulerService(app)
    try:
        with on_stop_signals(stop.set):
            await scheduler.start()
            await stop.wait()
    finally:
        await scheduler.stop()
        await app.close()


async def run_history(app: App) -> None:
    """``tickr history``: one history sink until SIGINT/SIGTERM, at ``TICKR_HISTORY_NICE``; closes ``app``."""
    lower_priority(app.settings.history_nice)
    stop = asyncio.Event()
    service = HistoryService(app)
    try:
        with on_stop_signals(stop.set):
            await service.start()
            await stop.wait()
    finally:
        await service.stop()
        await app.close()


async def run_api(settings: Settings) -> None:
    """``tickr api``: serve the HTTP API until SIGINT/SIGTERM (the history schema checked first)."""
    if settings.history:
        await (await open_history(settings)).close()
    stop = asyncio.Event()
    api = ApiService(settings)
    with on_stop_signals(stop.set):
        await api.start()
        serving = api.task
        waiter = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait([waiter, *([serving] if serving else [])], return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            await api.stop()
        if serving is not None and serving.done() and not serving.cancelled() and serving.exception():
            raise serving.exception()  # type: ignore[misc]
