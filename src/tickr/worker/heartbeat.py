"""Heartbeats: prove the worker alive every few seconds, extend the leases of all in-flight jobs in one call
per queue, and keep the worker registered."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from tickr.lifecycle import LoopService
from tickr.store.store import RedisStore

log = logging.getLogger("tickr.worker")


class Heartbeat(LoopService):
    """Two beats on one loop:

    - every ``beat_interval`` seconds (``TICKR_HEARTBEAT_SECONDS``) the light one: the worker's score in each
      queue's ``beats`` zset and in the registry, which a reaper reads to release the leases of a worker
      whose beats lapsed (``TICKR_WORKER_LAPSE_SECONDS``);
    - every ``interval`` seconds (lease/3) the full one: extend leases, cancel jobs whose lease another
      worker now holds, rewrite the registry entry and task types (their TTLs follow ``interval``).

    The light beat's score is the server time of the last full beat plus the monotonic time since, so a
    step of this host's wall clock cannot make a live worker look dead.
    """

    name = "heartbeat"
    log = log

    def __init__(
        self,
        store: RedisStore,
        worker_id: str,
        queues: list[str],
        concurrency: int,
        leases: Callable[[], dict[str, list[tuple[str, str]]]],
        on_lost: Callable[[str, str], None],
        interval: float,
        tasks: Mapping[str, Mapping[str, Any]] | None = None,
        beat_interval: float | None = None,
    ) -> None:
        super().__init__()
        self.tasks = tasks
        self.store = store
        self.worker_id = worker_id
        self.queues = queues
        self.concurrency = concurrency
        self.leases = leases
        self.on_lost = on_lost
        self.interval = interval
        self.beat_interval = min(interval, beat_interval) if beat_interval else interval
        # A failed beat is tried again soon, but never later than the next regular beat.
        self.max_backoff = self.beat_interval
        self._next_full = 0.0  # monotonic time of the next full beat: the first pass is one
        self._anchor: tuple[int, float] | None = None  # (server ms, monotonic s) of the last registration

    async def run_pass(self) -> float:
        if time.monotonic() >= self._next_full:
            await self.beat()
            self._next_full = time.monotonic() + self.interval
        else:
            await self.pulse()
        return max(0.0, min(self.beat_interval, self._next_full - time.monotonic()))

    async def beat(self) -> None:
        """The full heartbeat: extend every in-flight lease and refresh the worker's registry entry."""
        for queue, leases in self.leases().items():
            for job_id in await self.store.extend(queue, leases):
                self.on_lost(queue, job_id)
        await self.register()

    async def pulse(self) -> None:
        """The light heartbeat: one pipelined write of the worker's liveness on each queue it serves."""
        now_ms = self.store.clock_arg()
        if not now_ms:
            if self._anchor is None:
                await self.register()
                return
            server_ms, at = self._anchor
            now_ms = server_ms + int((time.monotonic() - at) * 1000)
        await self.store.workers.beat(self.worker_id, self.queues, now_ms)

    async def register(self) -> None:
        in_flight = sum(len(v) for v in self.leases().values())
        ttl = max(3, int(self.interval * 3) + 1)
        at = time.monotonic()
        now_ms = await self.store.workers.register(
            self.worker_id, self.queues, self.concurrency, in_flight, ttl, self.tasks
        )
        self._anchor = (now_ms, at)

    async def deregister(self) -> None:
        await self.store.workers.deregister(self.worker_id, self.queues)
