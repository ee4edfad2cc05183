"""The lease reaper: sleeps until the earliest lease deadline of each queue, then reaps what expired."""

from __future__ import annotations

import asyncio
import logging
import time

from tickr.store.store import RedisStore

log = logging.getLogger("tickr.reaper")


class Reaper:
    """Returns expired at-least-once leases to ready (or the DLQ), marks at-most-once ones lost.

    Runs inside every worker by default; any number may run at once (each reap is one script).
    """

    def __init__(self, store: RedisStore, queues: list[str], max_sleep: float) -> None:
        self.store = store
        self.queues = queues
        self.max_sleep = max_sleep
        self.passes = 0
        self.reaped = 0
        self.pass_done = asyncio.Event()

    async def run(self) -> None:
        while True:
            try:
                sleep = await self.reap_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("reaper pass failed: %s", exc)
                sleep = self.max_sleep
            await asyncio.sleep(sleep)

    async def reap_once(self) -> float:
        """Reap every queue once; returns how long to sleep until the next lease can expire."""
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
                wait = result.next_deadline_ms / 1000 - time.time() + 0.005
                sleep = min(sleep, max(0.01, wait))
        self.passes += 1
        self.pass_done.set()
        self.pass_done = asyncio.Event()
        return sleep
