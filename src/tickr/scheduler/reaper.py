"""The lease reaper: sleeps until the earliest lease deadline of each queue, then reaps what expired."""

from __future__ import annotations

import logging

from tickr.lifecycle import LoopService
from tickr.store.store import RedisStore

log = logging.getLogger("tickr.reaper")
DEADLINE_MARGIN_SECONDS = 0.005  # wake just after the deadline: the script compares whole milliseconds
MIN_SLEEP_SECONDS = 0.01


class Reaper(LoopService):
    """Returns expired at-least-once leases to ready (or the DLQ), marks at-most-once ones lost.

    Runs inside every worker by default; any number may run at once (each reap is one script). Lease
    deadlines are Redis server times: the wait until the next one is read on the store's server clock.
    """

    name = "reaper"
    log = log

    def __init__(self, store: RedisStore, queues: list[str], max_sleep: float) -> None:
        super().__init__()
        self.store = store
        self.queues = queues
        self.max_sleep = max_sleep
        self.max_backoff = max_sleep
        self.reaped = 0

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
                log.warning(
                    "reaped %d expired leases on %s (requeued %d, dead %d, lost %d)",
                    count,
                    queue,
                    result.requeued,
                    result.dead,
                    result.lost,
                )
            if result.next_deadline_ms is not None:
                wait = self.store.clock.seconds_until(result.next_deadline_ms) + DEADLINE_MARGIN_SECONDS
                sleep = min(sleep, max(MIN_SLEEP_SECONDS, wait))
        return sleep
