"""Batches acks: every job that finishes in one event-loop turn is acked in one script call per queue."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import defaultdict

from tickr.lifecycle import PassSignal
from tickr.metrics.instruments import Instruments
from tickr.store.store import RedisStore

log = logging.getLogger("tickr.worker")
_EMPTY_CONTEXT = contextvars.Context()


class Completer:
    """Collects ``(id, token, result)`` acks and flushes them once per loop turn.

    ``ack`` returns when the batch holding it is written, so a job's slot is freed (and a
    graceful shutdown finishes) only after its success is durable in Redis. A service:
    ``stop()`` waits for every ack handed in; ``passes`` advances after each batch written.
    """

    name = "completer"

    def __init__(self, store: RedisStore, attempts: int = 5, metrics: Instruments | None = None) -> None:
        self.metrics = metrics
        self.started = asyncio.Event()
        self.passes = PassSignal()
        self._store = store
        self._attempts = attempts
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
        delay = 0.05
        for attempt in range(1, self._attempts + 1):
            try:
                replies = await self._store.ack_many(queue, payload)
                break
            except Exception as exc:  # Redis hiccup: retry, the leases still protect the jobs
                if attempt == self._attempts:
                    log.error("ack of %d jobs on %s failed: %s; their leases will expire", len(items), queue, exc)
                    for *_, future in items:
                        if not future.done():
                            future.set_exception(exc)
                    return
                await asyncio.sleep(delay)
                delay *= 2
        if self.metrics is not None:
            landed = sum(replies)
            self.metrics.acked(queue, landed, len(replies) - landed)
        for (job_id, *_, future), acked in zip(items, replies, strict=True):
            if not acked:
                self.stale += 1
                log.warning("ack of job %s refused: its lease is held by another worker", job_id)
            if not future.done():
                future.set_result(acked)

    async def drain(self) -> None:
        """Wait until every ack handed in so far is written."""
        while self._flush_scheduled or self._tasks:
            await asyncio.sleep(0)
            if self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)
