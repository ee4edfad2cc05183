"""Batches acks: every job that finishes in one event-loop turn is acked in one script call per queue."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections import defaultdict
from typing import Protocol

from tickr.lifecycle import PassSignal
from tickr.metrics.instruments import Instruments
from tickr.store.store import Dequeued, RedisStore

log = logging.getLogger("tickr.worker")
# How long a failed ack is tried again (Redis restarting, a failover): well inside the 30 s default lease,
# which the heartbeat keeps extending meanwhile, so the finished job is not run again when Redis is back.
ACK_RETRY_SECONDS = 20.0
_EMPTY_CONTEXT = contextvars.Context()


class Refill(Protocol):
    """Who leases more jobs in the same round trip as an ack (the fetcher)."""

    worker_id: str

    def reserve_refill(self, freeing: int) -> int: ...

    async def deliver_refill(self, queue: str, reserved: int, batch: Dequeued | None) -> None: ...


class Completer:
    """Collects ``(id, token, result)`` acks and flushes them once per loop turn.

    ``ack`` returns when the batch holding it is written, so a job's slot is freed (and a
    graceful shutdown finishes) only after its success is durable in Redis. A service:
    ``stop()`` waits for every ack handed in; ``passes`` advances after each batch written.
    """

    name = "completer"

    def __init__(
        self,
        store: RedisStore,
        retry_seconds: float = ACK_RETRY_SECONDS,
        metrics: Instruments | None = None,
        refill: Refill | None = None,
    ) -> None:
        self.metrics = metrics
        # Set by the worker: each ack batch also leases the jobs its freed slots can take (one round trip).
        self.refill = refill
        self.started = asyncio.Event()
        self.passes = PassSignal()
        self._store = store
        self._retry_seconds = retry_seconds
        self._pending: dict[str, list[tuple[str, str, str, asyncio.Future[bool]]]] = defaultdict(list)
        self._flush_scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.stale = 0
        # Jobs whose ack is handed in and whose task has not finished yet: a heartbeat that finds
        # their lease gone is seeing this ack land, not another worker.
        self.acking: set[str] = set()

    async def ack(self, queue: str, job_id: str, token: str, result_json: str) -> bool:
        """Ack one job; True when acked, False when the lease was no longer ours."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        self._pending[queue].append((job_id, token, result_json, future))
        self.acking.add(job_id)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            # An empty context: the flush serves many jobs, its log lines must not carry the first one's.
            loop.call_soon(self._start_flush, context=_EMPTY_CONTEXT.copy())
        # Each ack has a future of its own, so no shield is needed: cancelling the waiting job
        # cancels only its future, and the ack itself is still written with the batch.
        return await future

    def _start_flush(self) -> None:
        self._flush_scheduled = False
        batches, self._pending = self._pending, defaultdict(list)
        for queue, items in batches.items():
            task = asyncio.get_running_loop().create_task(self._flush(queue, items))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _flush(self, queue: str, items: list[tuple[str, str, str, asyncio.Future[bool]]]) -> None:
        await self._write(queue, items)
        self.passes.advance()

    async def start(self) -> None:
        self.started.set()

    async def stop(self) -> None:
        """Wait until every ack handed in so far is written (safe to call twice)."""
        await self.drain()

    def settled(self, job_id: str) -> None:
        """The job's task has finished: a later heartbeat no longer sees it, so stop guarding it.

        Until then it stays in ``acking``, also after its ack landed: the task resumes a loop turn
        later, and a heartbeat answered in between must not take the landed ack for a lost lease.
        """
        self.acking.discard(job_id)

    async def _write(self, queue: str, items: list[tuple[str, str, str, asyncio.Future[bool]]]) -> None:
        payload = [(job_id, token, result) for job_id, token, result, _ in items]
        try:
            replies = await self._send(queue, payload)
        except Exception as exc:
            log.error("ack of %d jobs on %s failed: %s; their leases will expire", len(items), queue, exc)
            for *_, future in items:
                if not future.done():
                    future.set_exception(exc)
            return
        if self.metrics is not None:
            landed = sum(replies)
            self.metrics.acked(queue, landed, len(replies) - landed)
        for (job_id, *_, future), acked in zip(items, replies, strict=True):
            if not acked:
                self.stale += 1
                log.warning("ack of job %s refused: its lease is held by another worker", job_id)
            if not future.done():
                future.set_result(acked)

    async def _send(self, queue: str, payload: list[tuple[str, str, str]]) -> list[bool]:
        """Ack ``payload`` (with a refill on the first try when the fetcher wants one), tried again for up to
        ``retry_seconds`` while Redis fails; the last error is raised after that."""
        refill = self.refill
        want = refill.reserve_refill(len(payload)) if refill is not None else 0
        if refill is not None and want:
            batch = None
            try:
                replies, batch = await self._store.ack_and_dequeue(queue, payload, want, refill.worker_id)
                return replies
            except Exception:  # Redis hiccup: the retries below ack only
                pass
            finally:
                await refill.deliver_refill(queue, want, batch)  # the reserved slots are the fetcher's again
        delay, give_up_at = 0.05, time.monotonic() + self._retry_seconds
        while True:
            try:
                return await self._store.ack_many(queue, payload)
            except Exception:  # retrying is safe (acks are fenced); the leases protect the jobs meanwhile
                if time.monotonic() + delay > give_up_at:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    async def drain(self) -> None:
        """Wait until every ack handed in so far is written."""
        while self._flush_scheduled or self._tasks:
            await asyncio.sleep(0)
            if self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)
