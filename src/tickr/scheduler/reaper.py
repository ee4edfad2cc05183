"""The lease reaper: sleeps until the earliest lease deadline of each queue, then reaps what expired; and
releases the leases of workers whose heartbeat lapsed (dead workers), without waiting for their leases."""

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
    With ``lapse_ms``, the leases of a worker with no heartbeat for that long are handled the same way at
    once (``release_lapsed``), and a pass runs at least every ``heartbeat_seconds``.

    Runs inside every worker by default; any number may run at once (each reap is one script). Lease
    deadlines are Redis server times: the wait until the next one is read on the store's server clock.
    """

    name = "reaper"
    log = log

    def __init__(
        self,
        store: RedisStore,
        queues: list[str],
        max_sleep: float,
        unknown_type_grace_ms: int | None = None,
        lapse_ms: int = 0,
        heartbeat_seconds: float | None = None,
    ) -> None:
        super().__init__()
        self.store = store
        self.queues = queues
        # A worker that starts beating after a pass must be seen within a beat of its lapse: sleep at most that.
        if lapse_ms > 0 and heartbeat_seconds:
            max_sleep = min(max_sleep, heartbeat_seconds)
        self.max_sleep = max_sleep
        self.max_backoff = max_sleep
        self.unknown_type_grace_ms = unknown_type_grace_ms  # None: parked jobs are left alone
        self.lapse_ms = lapse_ms  # 0: only expired leases are reaped, lapsed heartbeats are not looked at
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
            deadlines = [await self._reap(queue)]
            if self.lapse_ms > 0:
                deadlines.append(await self._release_lapsed(queue))
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

    async def _reap(self, queue: str) -> int | None:
        """Expired leases; returns the next lease deadline."""
        result = await self.store.reap(queue)
        count = result.requeued + result.dead + result.lost
        if count:
            self._count(queue, count)
            log.warning(
                "reaped %d expired leases on %s (requeued %d, dead %d, lost %d)",
                count,
                queue,
                result.requeued,
                result.dead,
                result.lost,
            )
        return result.next_deadline_ms

    async def _release_lapsed(self, queue: str) -> int | None:
        """Leases of workers whose heartbeat lapsed; returns when the next beat can lapse."""
        result = await self.store.release_lapsed(queue, self.lapse_ms)
        count = result.requeued + result.dead + result.lost
        if count:
            self._count(queue, count)
        if count or result.workers:
            log.log(
                logging.WARNING if count else logging.INFO,
                "released %d leases of %d workers on %s whose heartbeat lapsed (requeued %d, dead %d, lost %d)",
                count,
                result.workers,
                queue,
                result.requeued,
                result.dead,
                result.lost,
            )
        return result.next_check_ms

    def _count(self, queue: str, count: int) -> None:
        self.reaped += count
        if self.metrics is not None:
            self.metrics.reaped(queue, count)
