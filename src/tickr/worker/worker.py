"""The worker process: fetch leased jobs when there are free slots, run them, keep leases alive, stop gracefully.

A worker is a set of services (fetcher, marker listeners, heartbeat, completer, reaper) around an executor;
``Worker._shutdown`` documents the stop order.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import os
import socket
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import uuid_utils

from tickr.app import App
from tickr.config import Settings, default
from tickr.lifecycle import ServiceProtocol, stop_all
from tickr.metrics.instruments import instruments
from tickr.scheduler.reaper import Reaper
from tickr.store.store import LeasedJob
from tickr.tasks import TaskDef
from tickr.worker.completer import Completer
from tickr.worker.executor import Executor
from tickr.worker.fetcher import Fetcher, MarkerListener, Slots
from tickr.worker.heartbeat import Heartbeat

log = logging.getLogger("tickr.worker")


def _default_queues() -> list[str]:
    return Settings.model_construct().queue_list()


@dataclass(slots=True)
class WorkerConfig:
    """How one worker process runs. Defaults are the settings' defaults (``WorkerConfig.from_settings``)."""

    queues: list[str] = field(default_factory=_default_queues)
    concurrency: int = default("concurrency")
    burst: bool = False
    grace_seconds: float = default("shutdown_grace_seconds")
    wake_cap_seconds: float = default("wake_cap_seconds")
    reaper: bool = True
    worker_id: str = ""

    def __post_init__(self) -> None:
        if not self.worker_id:
            self.worker_id = f"{socket.gethostname()}-{os.getpid()}-{str(uuid_utils.uuid4())[:8]}"

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: object) -> WorkerConfig:
        """The worker configuration that ``settings`` describe, with ``overrides`` on top."""
        values: dict[str, object] = {
            "queues": settings.queue_list(),
            "concurrency": settings.concurrency,
            "grace_seconds": settings.shutdown_grace_seconds,
            "wake_cap_seconds": settings.wake_cap_seconds,
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


def task_defaults(registry: Mapping[str, TaskDef]) -> dict[str, dict[str, Any]]:
    """What a worker registers for each task type it runs: the defaults a job of that type inherits."""
    return {name: {**d.options.to_dict(), "payload_schema": d.payload_schema()} for name, d in registry.items()}


@dataclass(slots=True)
class _InFlight:
    leased: LeasedJob
    task: asyncio.Task[None]


class Worker:
    """Runs jobs from ``config.queues`` with up to ``config.concurrency`` at once.

    Services, in start order: completer, heartbeat, marker listeners, reaper, fetcher.
    """

    def __init__(self, app: App, config: WorkerConfig | None = None) -> None:
        self.app = app
        self.config = config or WorkerConfig.from_settings(app.settings)
        self.store = app.store
        self.id = self.config.worker_id
        self.in_flight: dict[str, _InFlight] = {}
        self.slots = Slots(self.config.concurrency, lambda: len(self.in_flight))
        self.metrics = instruments(app.settings.metrics)
        if self.metrics is not None:
            self.metrics.serving(self.config.queues)
        self.completer = Completer(self.store, metrics=self.metrics)
        self.executor = Executor(self.store, app.registry, self.completer, app.settings, self.id, self.metrics)
        lease_s = self.store.config.lease_ms / 1000
        tasks = task_defaults(app.registry)
        self.heartbeat = Heartbeat(
            self.store,
            self.id,
            self.config.queues,
            self.config.concurrency,
            self._leases,
            self._lease_lost,
            interval=lease_s / 3,
            tasks=tasks,
            beat_interval=app.settings.heartbeat_seconds,
        )
        grace_ms = int(app.settings.unknown_type_grace_seconds * 1000)
        self.reaper = Reaper(
            self.store,
            self.config.queues,
            max_sleep=lease_s,
            unknown_type_grace_ms=grace_ms,
            lapse_ms=int(app.settings.worker_lapse_seconds * 1000),
            heartbeat_seconds=app.settings.heartbeat_seconds,
        )
        self.reaper.metrics = self.metrics
        self.fetcher = Fetcher(
            self.store,
            self.id,
            self.config.queues,
            self.slots,
            self._start,
            wake_cap_seconds=self.config.wake_cap_seconds,
            burst=self.config.burst,
            on_drained=self.stop,
            types=list(tasks),
        )
        self.completer.refill = self.fetcher  # each ack batch also leases what its freed slots can take
        self.listeners = [
            MarkerListener(
                self.store,
                q,
                self.slots,
                self.fetcher.wake,
                self.config.wake_cap_seconds,
                list(tasks),
                fetcher_idle=self.fetcher.sleeping,
            )
            for q in self.config.queues
        ]
        self.started = asyncio.Event()
        self._stopping = False
        self._stop_requests = 0
        self._stop_event = asyncio.Event()

    @property
    def fetched(self) -> int:
        """Jobs leased so far."""
        return self.fetcher.fetched

    @property
    def services(self) -> list[ServiceProtocol]:
        """The worker's services in start order (stopped in the order ``stop`` documents)."""
        reaper: list[ServiceProtocol] = [self.reaper] if self.config.reaper else []
        return [self.completer, self.heartbeat, *self.listeners, *reaper, self.fetcher]

    # -- public -------------------------------------------------------------------------------
    async def run(self) -> None:
        """Run until ``stop()`` (or, in burst mode, until the queues are empty), then shut down."""
        loop = asyncio.get_running_loop()
        loop.set_default_executor(
            ThreadPoolExecutor(max_workers=self.config.concurrency, thread_name_prefix="tickr-job")
        )
        # Everything loaded so far lives as long as the process: keep it out of the collector's
        # full passes, which would otherwise walk it every few seconds under load (ms-long pauses).
        gc.freeze()
        await self.heartbeat.register()
        try:
            for service in self.services:
                await service.start()
            self.started.set()
            log.info(
                "worker %s serving %s with concurrency %d",
                self.id,
                ",".join(self.config.queues),
                self.config.concurrency,
            )
            await self._stop_event.wait()
        finally:
            await self._shutdown()

    @property
    def stopping(self) -> bool:
        """True once a stop was requested."""
        return self._stopping

    def stop(self) -> None:
        """Ask the worker to stop: first call is graceful, a second one skips the grace period."""
        self._stop_requests += 1
        if self._stop_requests == 1:
            log.info(
                "stopping: finishing %d in-flight jobs (grace %.0fs)", len(self.in_flight), self.config.grace_seconds
            )
        else:
            log.warning("second stop request: handing back in-flight jobs now")
        self._stopping = True
        self._stop_event.set()
        self.fetcher.wake()
        self.slots.release()

    # -- running ------------------------------------------------------------------------------
    def _start(self, leased: LeasedJob) -> None:
        if self.metrics is not None:
            self.metrics.started(leased.job)
        task = asyncio.get_running_loop().create_task(self.executor.run(leased))
        self.in_flight[leased.job.id] = _InFlight(leased, task)
        task.add_done_callback(functools.partial(self._finished, leased.job.id))

    def _finished(self, job_id: str, task: asyncio.Task[None]) -> None:
        entry = self.in_flight.get(job_id)
        if entry is not None and entry.task is task:
            del self.in_flight[job_id]
            self.completer.settled(job_id)
        if not task.cancelled() and task.exception() is not None:
            log.error("job %s: outcome could not be recorded: %s", job_id, task.exception())
        self.slots.release()
        if self.fetcher.maybe_more or (self.config.burst and not self.in_flight):
            self.fetcher.wake()  # burst mode: the last job finished, so look whether the queues are empty

    def _leases(self) -> dict[str, list[tuple[str, str]]]:
        out: dict[str, list[tuple[str, str]]] = {}
        for entry in self.in_flight.values():
            out.setdefault(entry.leased.job.queue, []).append((entry.leased.job.id, entry.leased.token))
        return out

    def _lease_lost(self, queue: str, job_id: str) -> None:
        if job_id in self.completer.acking:
            return  # its ack landed after the heartbeat read the leases: finished, not lost
        entry = self.in_flight.pop(job_id, None)
        if entry is not None:
            log.warning("lease of job %s on %s lost to another worker: cancelling our run", job_id, queue)
            entry.task.cancel()

    # -- stopping -----------------------------------------------------------------------------
    async def _shutdown(self) -> None:
        """Stop order:

        1. stop fetching: marker listeners and the fetcher stop, so no new lease is taken;
        2. wait up to the grace period for in-flight jobs (and their acks) to finish;
        3. cancel what still runs and hand its leases back in one ``release`` call per queue;
        4. stop the completer (every ack written), reaper and heartbeat; deregister.

        A second stop request skips step 2.
        """
        await stop_all([self.fetcher, *self.listeners])
        pending = [e.task for e in self.in_flight.values()]
        if pending and self._stop_requests < 2 and self.config.grace_seconds > 0:
            waiter = asyncio.ensure_future(asyncio.wait(pending, timeout=self.config.grace_seconds))
            stop_again = asyncio.ensure_future(self._second_stop())
            await asyncio.wait([waiter, stop_again], return_when=asyncio.FIRST_COMPLETED)
            stop_again.cancel()
        await self._hand_back()
        await stop_all([self.completer, self.reaper, self.heartbeat])
        try:
            await self.heartbeat.deregister()
        except Exception as exc:
            log.warning("could not deregister worker: %s", exc)
        log.info("worker %s stopped (%d succeeded, %d failed)", self.id, self.executor.succeeded, self.executor.failed)

    async def _second_stop(self) -> None:
        while self._stop_requests < 2:
            self._stop_event.clear()
            await self._stop_event.wait()

    async def _hand_back(self) -> None:
        """Cancel jobs still running and give their leases back at once."""
        leftovers = list(self.in_flight.values())
        if not leftovers:
            return
        for entry in leftovers:
            entry.task.cancel()
        await asyncio.gather(*(e.task for e in leftovers), return_exceptions=True)
        await self.completer.drain()  # an ack already on its way must land before we release
        by_queue: dict[str, list[tuple[str, str]]] = {}
        for entry in leftovers:
            by_queue.setdefault(entry.leased.job.queue, []).append((entry.leased.job.id, entry.leased.token))
        for queue, leases in by_queue.items():
            requeued, lost, _ = await self.store.release(queue, leases)
            log.warning(
                "handed back %d unfinished jobs on %s (%d at-most-once marked lost)", requeued + lost, queue, lost
            )
        self.in_flight.clear()
