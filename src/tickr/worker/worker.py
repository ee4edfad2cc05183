"""The worker process: fetch leased jobs when there are free slots, run them, keep leases alive, stop gracefully.

Stop order (``stop``):
  1. stop fetching: listeners and the fetch loop end, so no new lease is taken;
  2. wait up to the grace period for in-flight jobs (and their acks) to finish;
  3. cancel what still runs and hand its leases back in one ``release`` call per queue;
  4. stop heartbeat and reaper, deregister, close connections.
A second stop request skips step 2.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import os
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import uuid_utils

from tickr.app import App
from tickr.scheduler.reaper import Reaper
from tickr.store.store import LeasedJob
from tickr.worker.completer import Completer
from tickr.worker.executor import Executor
from tickr.worker.heartbeat import Heartbeat
from tickr.worker.waits import DueWaiter

log = logging.getLogger("tickr.worker")
SERVICE_STOP_SECONDS = 5.0
BURST_RECHECK_SECONDS = 0.05


@dataclass(slots=True)
class WorkerConfig:
    """How one worker process runs."""

    queues: list[str] = field(default_factory=lambda: ["default"])
    concurrency: int = 32
    burst: bool = False
    grace_seconds: float = 30.0
    wake_cap_seconds: float = 5.0
    reaper: bool = True
    worker_id: str = ""

    def __post_init__(self) -> None:
        if not self.worker_id:
            self.worker_id = f"{socket.gethostname()}-{os.getpid()}-{str(uuid_utils.uuid4())[:8]}"


@dataclass(slots=True)
class _InFlight:
    leased: LeasedJob
    task: asyncio.Task[None]


class Worker:
    """Runs jobs from ``config.queues`` with up to ``config.concurrency`` at once."""

    def __init__(self, app: App, config: WorkerConfig | None = None) -> None:
        self.app = app
        self.config = config or WorkerConfig(
            queues=app.settings.queue_list(),
            concurrency=app.settings.concurrency,
            grace_seconds=app.settings.shutdown_grace_seconds,
        )
        self.store = app.store
        self.id = self.config.worker_id
        self.completer = Completer(self.store)
        self.executor = Executor(self.store, app.registry, self.completer, app.settings, self.id)
        self.in_flight: dict[str, _InFlight] = {}
        lease_s = self.store.config.lease_ms / 1000
        self.heartbeat = Heartbeat(
            self.store,
            self.id,
            self.config.queues,
            self.config.concurrency,
            self._leases,
            self._lease_lost,
            interval=lease_s / 3,
        )
        self.reaper = Reaper(self.store, self.config.queues, max_sleep=lease_s)
        self.started = asyncio.Event()
        self.fetched = 0
        self._wake = asyncio.Event()
        self._slot_free = asyncio.Event()
        self._slot_free.set()
        self._maybe_more = True
        self._next_due: dict[str, int | None] = {}
        self._clock_offset_ms = 0.0
        self._stopping = False
        self._stop_requests = 0
        self._stop_event = asyncio.Event()
        self._services: list[asyncio.Task[None]] = []
        self._rotation = 0
        self._batch_max = max(1, (self.config.concurrency + 1) // 2)
        self._due = DueWaiter()

    # -- public -------------------------------------------------------------------------------
    async def run(self, install_signals: bool = False) -> None:
        """Run until ``stop()`` (or, in burst mode, until the queues are empty), then shut down."""
        loop = asyncio.get_running_loop()
        loop.set_default_executor(
            ThreadPoolExecutor(max_workers=self.config.concurrency, thread_name_prefix="tickr-job")
        )
        if install_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self.stop)
        # Everything loaded so far lives as long as the process: keep it out of the collector's
        # full passes, which would otherwise walk it every few seconds under load (ms-long pauses).
        gc.freeze()
        await self.heartbeat.register()
        self._services = [
            loop.create_task(self.heartbeat.run(), name="tickr-heartbeat"),
            *[loop.create_task(self._listen(q), name=f"tickr-listen-{q}") for q in self.config.queues],
        ]
        if self.config.reaper:
            self._services.append(loop.create_task(self.reaper.run(), name="tickr-reaper"))
        fetch = loop.create_task(self._fetch_loop(), name="tickr-fetch")
        self.started.set()
        log.info(
            "worker %s serving %s with concurrency %d", self.id, ",".join(self.config.queues), self.config.concurrency
        )
        try:
            await self._stop_event.wait()
        finally:
            fetch.cancel()
            await self._shutdown()
            if install_signals:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)

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
        self._wake.set()
        self._slot_free.set()

    # -- fetching -----------------------------------------------------------------------------
    def _free_slots(self) -> int:
        return self.config.concurrency - len(self.in_flight)

    async def _listen(self, queue: str) -> None:
        """Block on the queue's marker while there are free slots; a marker wakes the fetch loop."""
        while not self._stopping:
            await self._slot_free.wait()
            if self._stopping:
                return
            try:
                score = await self.store.wait_for_marker(queue, self.config.wake_cap_seconds)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("waiting on %s failed: %s", queue, exc)
                await asyncio.sleep(1.0)
                continue
            if score is not None:
                self._wake.set()

    def _queue_order(self) -> list[str]:
        queues = self.config.queues
        self._rotation = (self._rotation + 1) % len(queues)
        return queues[self._rotation :] + queues[: self._rotation]

    async def _fetch_round(self) -> bool:
        """Dequeue from each queue while slots are free; True when more work may be waiting."""
        more = False
        for queue in self._queue_order():
            free = self._free_slots()
            if free <= 0:
                return True
            # Half the slots at most: the next batch is fetched while this one runs and is acked.
            count = min(free, self._batch_max)
            sent = time.time() * 1000
            batch = await self.store.dequeue(queue, count, self.id)
            # now_ms is whole ms (floored): +0.5 centres it; same-host clocks then agree to ~0.1 ms
            self._clock_offset_ms = batch.now_ms + 0.5 - (sent + time.time() * 1000) / 2
            self._next_due[queue] = batch.next_due_ms
            for leased in batch.jobs:
                self._start(leased)
            more = more or batch.more or len(batch.jobs) == count
        return more

    def _seconds_until_due(self) -> float:
        dues = [d for d in self._next_due.values() if d is not None]
        if not dues:
            return self.config.wake_cap_seconds
        server_now = time.time() * 1000 + self._clock_offset_ms
        return max(0.0, min(self.config.wake_cap_seconds, (min(dues) - server_now) / 1000))

    async def _fetch_loop(self) -> None:
        while not self._stopping:
            if self._free_slots() <= 0:
                self._slot_free.clear()
                await self._slot_free.wait()
                continue
            self._wake.clear()
            try:
                self._maybe_more = await self._fetch_round()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("dequeue failed: %s", exc)
                await asyncio.sleep(1.0)
                continue
            if self._maybe_more and self._free_slots() > 0:
                continue
            if self.config.burst and not self.in_flight and await self._queues_empty():
                log.info("burst mode: queues empty, stopping")
                self.stop()
                return
            wait = self._seconds_until_due()
            precise = wait < self.config.wake_cap_seconds
            if self.config.burst and wait > BURST_RECHECK_SECONDS:
                # Other workers' leases end (or expire) without a marker: in burst mode, look again soon.
                wait, precise = BURST_RECHECK_SECONDS, False
            await self._due.wait(self._wake, wait, precise=precise)

    async def _queues_empty(self) -> bool:
        pipe = self.store.redis.pipeline(transaction=False)
        for queue in self.config.queues:
            k = self.store.keys(queue)
            for key in k.ready_all:
                pipe.llen(key)
            pipe.zcard(k.scheduled)
            pipe.zcard(k.active)
        return not any(await pipe.execute())

    # -- running ------------------------------------------------------------------------------
    def _start(self, leased: LeasedJob) -> None:
        self.fetched += 1
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
        self._slot_free.set()
        if self._maybe_more or (self.config.burst and not self.in_flight):
            self._wake.set()  # burst mode: the last job finished, so look whether the queues are empty

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
        for task in self._services:
            if task.get_name().startswith("tickr-listen"):
                task.cancel()
        pending = [e.task for e in self.in_flight.values()]
        if pending and self._stop_requests < 2 and self.config.grace_seconds > 0:
            waiter = asyncio.ensure_future(asyncio.wait(pending, timeout=self.config.grace_seconds))
            stop_again = asyncio.ensure_future(self._second_stop())
            await asyncio.wait([waiter, stop_again], return_when=asyncio.FIRST_COMPLETED)
            stop_again.cancel()
        await self._hand_back()
        await self.completer.drain()
        for task in self._services:
            task.cancel()
        # A cancelled blocking read can take a moment to unwind; never let it hold the process hostage.
        stuck: set[asyncio.Task[None]] = set()
        if self._services:
            _, stuck = await asyncio.wait(self._services, timeout=SERVICE_STOP_SECONDS)
        if stuck:
            log.warning(
                "%d background tasks did not stop within %.0fs: %s",
                len(stuck),
                SERVICE_STOP_SECONDS,
                ", ".join(sorted(t.get_name() for t in stuck)),
            )
        self._due.close()
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
