"""Heartbeats: extend the leases of all in-flight jobs in one call per queue, and keep the worker registered."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from tickr.lifecycle import LoopService
from tickr.store.store import RedisStore

log = logging.getLogger("tickr.worker")


class Heartbeat(LoopService):
    """Every ``interval`` seconds: extend leases; cancel jobs whose lease another worker now holds."""

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
        # A failed beat is tried again soon, but never later than the next regular beat.
        self.max_backoff = interval

    async def run_pass(self) -> float:
        await self.beat()
        return self.interval

    async def beat(self) -> None:
        """One heartbeat: extend every in-flight lease and refresh the worker's registry entry."""
        for queue, leases in self.leases().items():
            for job_id in await self.store.extend(queue, leases):
                self.on_lost(queue, job_id)
        await self.register()

    async def register(self) -> None:
        in_flight = sum(len(v) for v in self.leases().values())
        ttl = max(3, int(self.interval * 3) + 1)
        await self.store.workers.register(self.worker_id, self.queues, self.concurrency, in_flight, ttl, self.tasks)

    async def deregister(self) -> None:
        await self.store.workers.deregister(self.worker_id, self.queues)
