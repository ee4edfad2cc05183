"""Fetching: marker listeners wake the fetcher, which leases batches sized to the worker's free slots.

No polling: an idle worker blocks on each queue's marker (``BZPOPMIN``) and sleeps exactly until the next
scheduled job is due (read on the store's server clock); a free slot or a marker wakes it at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Sequence

from tickr.lifecycle import LoopService
from tickr.store.store import Dequeued, LeasedJob, RedisStore
from tickr.worker.waits import DueWaiter

log = logging.getLogger("tickr.worker")
BURST_RECHECK_SECONDS = 0.05


class Slots:
    """The worker's capacity: how many jobs may start now, and a signal when one frees up.

    ``reserved``: slots promised to a dequeue in flight (the fetcher's, or one sent with an ack), so two
    dequeues never lease for the same slot.
    """

    def __init__(self, concurrency: int, in_use: Callable[[], int]) -> None:
        self.concurrency = concurrency
        self._in_use = in_use
        self.reserved = 0
        self.freed = asyncio.Event()
        self.freed.set()

    @property
    def free(self) -> int:
        return self.concurrency - self._in_use() - self.reserved

    def release(self) -> None:
        self.freed.set()


class MarkerListener(LoopService):
    """Blocks on one queue's wake-up marker while the worker has free slots and the fetcher sleeps; a marker
    wakes the fetcher.

    While the fetcher finds more work it does not listen: a busy queue's dequeues set the marker for other
    workers, and popping it here would cost a round trip per batch and wake a fetcher already awake. Nothing is
    missed: the marker stays set until popped, so the first listen after the fetcher went idle sees it.
    """

    log = log
    max_backoff = 1.0

    def __init__(
        self,
        store: RedisStore,
        queue: str,
        slots: Slots,
        wake: Callable[[], None],
        block: float,
        types: Sequence[str] = (),
        fetcher_idle: asyncio.Event | None = None,
    ) -> None:
        super().__init__()
        self.name = f"listen-{queue}"
        self.fetcher_idle = fetcher_idle
        self.store = store
        self.queue = queue
        self.slots = slots
        self.on_marker = wake
        self.block = block
        self.types = types  # also wake for jobs of these types parked by workers that cannot run them

    async def run_pass(self) -> float:
        await self.slots.freed.wait()
        if self.fetcher_idle is not None:
            await self.fetcher_idle.wait()
        if await self.store.wait_for_marker(self.queue, self.block, self.types) is not None:
            self.on_marker()
        return 0.0


class Fetcher(LoopService):
    """Dequeues from the queues in rotation while slots are free; ``start_job`` runs each leased job.

    In burst mode it calls ``on_drained`` once nothing is in flight and the queues hold no job.
    """

    name = "fetcher"
    log = log
    max_backoff = 1.0
    graceful_stop = True  # a dequeue cancelled mid-call would strand the leases it took

    def __init__(
        self,
        store: RedisStore,
        worker_id: str,
        queues: list[str],
        slots: Slots,
        start_job: Callable[[LeasedJob], None],
        *,
        wake_cap_seconds: float,
        burst: bool = False,
        on_drained: Callable[[], None] | None = None,
        types: Collection[str] | None = None,
    ) -> None:
        super().__init__()
        self.types = types
        self.store = store
        self.worker_id = worker_id
        self.queues = queues
        self.slots = slots
        self.start_job = start_job
        self.wake_cap_seconds = wake_cap_seconds
        self.burst = burst
        self.on_drained = on_drained
        self.fetched = 0
        self.maybe_more = True
        self._next_due: dict[str, int | None] = {}
        self._rotation = 0
        self._batch_max = max(1, (slots.concurrency + 1) // 2)
        self._due = DueWaiter()
        self.sleeping = asyncio.Event()  # set while waiting for a marker or a due time: the listeners listen then

    def _queue_order(self) -> list[str]:
        queues = self.queues
        self._rotation = (self._rotation + 1) % len(queues)
        return queues[self._rotation :] + queues[: self._rotation]

    async def fetch_round(self) -> bool:
        """Dequeue from each queue while slots are free; True when more work may be waiting."""
        more = False
        for queue in self._queue_order():
            free = self.slots.free
            if free <= 0:
                return True
            # Half the slots at most: the next batch is fetched while this one runs and is acked.
            count = min(free, self._batch_max)
            self.slots.reserved += count
            try:
                batch = await self.store.dequeue(queue, count, self.worker_id, types=self.types)
            finally:
                self.slots.reserved -= count
            self._next_due[queue] = batch.next_due_ms
            for leased in batch.jobs:
                self.fetched += 1
                self.start_job(leased)
            more = more or batch.more or len(batch.jobs) == count
        return more

    # -- refills: a dequeue sent in the same write as an ack (Completer) ---------------------------------------
    def reserve_refill(self, freeing: int) -> int:
        """How many jobs to lease with an ack that frees ``freeing`` slots (0: none), reserved until delivered.

        Only while the queues seem to hold more (an idle queue's acks add no dequeue), never when stopping.
        The acked jobs' handlers have returned, so their slots count as free: for one loop turn, until their
        tasks end, more tasks than ``concurrency`` exist, never more handlers running.
        """
        if self.stopping or not self.maybe_more:
            return 0
        want = min(max(0, self.slots.free) + freeing, self._batch_max)
        self.slots.reserved += want
        return want

    async def deliver_refill(self, queue: str, reserved: int, batch: Dequeued | None) -> None:
        """Start the jobs a refill leased (or hand them back when stopping), and free its reservation."""
        self.slots.reserved -= reserved
        if batch is None:
            self.slots.release()
            return
        self._next_due[queue] = batch.next_due_ms
        if self.stopping:
            if batch.jobs:
                await self.store.release(queue, [(leased.job.id, leased.token) for leased in batch.jobs])
            return
        for leased in batch.jobs:
            self.fetched += 1
            self.start_job(leased)
        self.slots.release()  # what it did not fill is the fetcher's again

    def _seconds_until_due(self) -> float:
        dues = [d for d in self._next_due.values() if d is not None]
        if not dues:
            return self.wake_cap_seconds
        return max(0.0, min(self.wake_cap_seconds, self.store.clock.seconds_until(min(dues))))

    def request_stop(self) -> None:
        super().request_stop()
        self.slots.release()

    async def run_pass(self) -> float:
        if self.slots.free <= 0 and not self.stopping:
            self.slots.freed.clear()
            await self.slots.freed.wait()
            return 0.0
        if self.stopping:
            return 0.0
        self._wake.clear()
        self.maybe_more = await self.fetch_round()
        if self.stopping or (self.maybe_more and self.slots.free > 0):
            return 0.0
        if self.burst and self.slots.free == self.slots.concurrency and await self.store.queues.drained(self.queues):
            log.info("burst mode: queues empty, stopping")
            if self.on_drained is not None:
                self.on_drained()  # the worker stops this service next
            return self.wake_cap_seconds
        wait = self._seconds_until_due()
        precise = wait < self.wake_cap_seconds
        if self.burst and wait > BURST_RECHECK_SECONDS:
            # Other workers' leases end (or expire) without a marker: in burst mode, look again soon.
            wait, precise = BURST_RECHECK_SECONDS, False
        if not self.stopping:
            # Out of work (not merely out of free slots, when a finishing job wakes it): listen for markers.
            if not self.maybe_more:
                self.sleeping.set()
            try:
                await self._due.wait(self._wake, wait, precise=precise)
            finally:
                self.sleeping.clear()
        return 0.0
