"""The lease reaper: sleeps until the earliest lease deadline of each queue, then reaps what expired."""

from __future__ import annotations

import logging

from tickr.lifecycle import LoopService
from tickr.metrics.instruments import Instruments
from tickr.store.store import RedisStore

log = logging.getLogger("tickr.reaper")
DEADLINE_MARGIN_SECONDS = 0.005  # wake just after the deadline: the script compares whole milliseconds
MIN_SLEEP_SECONDS = 0.01


class Reaper(LoopService):
    """Returns expired at-least-once leases to ready (or the DLQ), marks at-most-once ones lost, and
    dead-letters jobs parked for want of a worker that runs their type once the grace period is over.

    Runs inside every worker by default; any number may run at once (each reap is one script). Lease
    deadlines are Redis server times: the wait until the next one is read on the store's server clock.
    """

    name = "reaper"
    log = log

    def __init__(
        self, store: RedisStore, queues: list[str], max_sleep: float, unknown_type_grace_ms: int | None = None
    ) -> None:
        super().__init__()
        self.store = store
        self.queues = queues
        self.max_sleep = max_sleep
        self.max_backoff = max_sleep
        self.unknown_type_grace_ms = unknown_type_grace_ms  # None: parked jobs are left alone
        self.reaped = 0
        self.unrunnable = 0
        self.metrics: Instruments | None = None  # set by the worker when metrics are on

    async def run_pass(self) -> float:
        return await self.reap_once()

    async def reap_once(self) -> float:
        """Reap every queue once; returns how long to sleep until the next lease can expire."""
        if self.store.clock.stale:
            await self.store.server_time_ms()
        sleep = self.max_sleep
        for queue in self.queues:
            result = await self.store.reap(queue)
            count = result.requeued + result.dead + result.lost
            if count:
                self.reaped += count
                if self.metrics is not None:
                    self.metrics.reaped(queue, count)
                log.warning(
                    "reaped %d expired leases on %s (requeued %d, dead %d, lost %d)",
                    count,
                    queue,
                    result.requeued,
                    result.dead,
                    result.lost,
                )
            deadlines = [result.next_deadline_ms]
            if self.unknown_type_grace_ms is not None:
                dead, next_check = await self.store.expire_unrunnable(queue, self.unknown_type_grace_ms)
                if dead:
                    self.unrunnable += dead
                    log.warning("dead-lettered %d jobs on %s: no live worker runs their type", dead, queue)
                deadlines.append(next_check)
            for deadline in deadlines:
                if deadline is not None:
                    wait = self.store.clock.seconds_until(deadline) + DEADLINE_MARGIN_SECONDS
                    sleep = min(sleep, max(MIN_SLEEP_SECONDS, wait))
        return sleep
