"""The admin path for whole queues: counts and throughput, pause/resume, the dead-letter queue.

Job-level reads (get, list, cancel, replay, update) live in ``store/job_admin.py``, workers in ``store/workers.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tickr.core.job import PRIORITIES
from tickr.store.boundary import store_boundary
from tickr.store.codec import lenient_int
from tickr.store.connection import is_cluster
from tickr.store.keys import QueueKeys, queues_registry
from tickr.store.replies import JobChangeCode

if TYPE_CHECKING:
    from tickr.store.store import RedisStore

COUNTERS = (
    "enqueued",
    "dequeued",
    "succeeded",
    "failed",
    "retried",
    "dead",
    "reaped",
    "lost",
    "cancelled",
    "replayed",
    "stale_acks",
    "stale_extends",
    "stale_fails",
)
THROUGHPUT_WINDOW_MS = 60_000
RETRYING_SAMPLE = 200  # scheduled jobs read to estimate how many are retries
DLQ_CHUNK = 500


@dataclass(frozen=True, slots=True)
class QueueStats:
    """A snapshot of one queue.

    ``scheduled`` counts the whole scheduled zset (delayed jobs and retries waiting for their
    backoff); ``retrying`` is the part of it that are retries: exact up to ``RETRYING_SAMPLE``
    scheduled jobs, estimated from a random sample of that size beyond. ``finished_last_minute``
    counts the ``done`` zset over the last minute, so it includes cancelled and lost jobs.
    """

    name: str
    paused: bool
    queued: int
    queued_by_priority: dict[str, int]
    scheduled: int
    retrying: int
    active: int
    dead: int
    done: int
    finished_last_minute: int
    oldest_waiting_ms: int | None
    counters: dict[str, int]
    now_ms: int

    @property
    def throughput_per_second(self) -> float:
        return self.finished_last_minute / (THROUGHPUT_WINDOW_MS / 1000)


class NamedPipeline:
    """A non-transactional pipeline whose replies are read by the name each command was added under.

    On a cluster the pipeline fans out per node (redis-py groups its commands by the node of their slot); keyless
    commands (``time``) and scripts, which cluster pipelines refuse, run beside it on the client, concurrently.
    """

    def __init__(self, redis: Any) -> None:
        self._redis = redis
        self._cluster = is_cluster(redis)
        self._pipe = redis.pipeline(transaction=False)
        self._names: list[Any] = []
        self._beside: dict[Any, Awaitable[Any]] = {}

    def add(self, name: Any, command: str, *args: Any, **kwargs: Any) -> None:
        if self._cluster and command in _KEYLESS:
            self._beside[name] = getattr(self._redis, command)(*args, **kwargs)
            return
        getattr(self._pipe, command)(*args, **kwargs)
        self._names.append(name)

    async def add_script(self, name: Any, call: Callable[[Any], Awaitable[Any]]) -> None:
        """Queue a script call (``call(pipeline)``, e.g. a ``Scripts`` method), read back under ``name``."""
        if self._cluster:
            self._beside[name] = call(self._redis)
            return
        await call(self._pipe)
        self._names.append(name)

    async def execute(self) -> dict[Any, Any]:
        if not self._beside:
            return dict(zip(self._names, await self._pipe.execute(), strict=True))
        names = list(self._beside)
        piped = self._pipe.execute() if self._names else asyncio.sleep(0, [])
        replies, *beside = await asyncio.gather(piped, *self._beside.values())
        return {**dict(zip(self._names, replies, strict=True)), **dict(zip(names, beside, strict=True))}


_KEYLESS = frozenset({"time"})


@store_boundary
class QueueAdmin:
    """Queue-level admin reads and writes. Shares the store's client, keys and scripts."""

    def __init__(self, store: RedisStore) -> None:
        self.store = store
        self.redis = store.redis

    async def ping(self) -> bool:
        """True when Redis answers (raises the client's error otherwise)."""
        return bool(await self.redis.ping())

    async def now_ms(self) -> int:
        """The store's clock: the test clock when one is set, else the Redis server's TIME."""
        given = self.store.clock_arg()
        if given:
            return given
        seconds, micros = await self.redis.time()
        return int(seconds) * 1000 + int(micros) // 1000

    async def counters(self, queue: str) -> dict[str, int]:
        """The queue's counters (``enqueued``, ``succeeded``, ``dead``, ...), 0 for those never counted."""
        raw = await self.redis.hgetall(self.store.keys(queue).stats)
        return {name: lenient_int(raw.get(name)) or 0 for name in COUNTERS}

    async def delete(self, queue: str) -> int:
        """Delete every key of ``queue`` (jobs, lists, events, counters) and its registry entry; returns keys removed.

        For benchmarks and tests on a shared server; it does not stop workers that serve the queue.
        """
        removed = 0
        batch: list[str] = []
        async for key in self.redis.scan_iter(match=self.store.keys(queue).base + "*", count=5000):
            batch.append(key)
            if len(batch) >= 2000:
                removed += int(await self.redis.unlink(*batch))
                batch = []
        if batch:
            removed += int(await self.redis.unlink(*batch))
        await self.redis.srem(queues_registry(self.store.config.prefix), queue)
        return removed

    async def drained(self, queues: Sequence[str]) -> bool:
        """True when no job of ``queues`` is ready, scheduled or leased (one round trip)."""
        pipe = self.redis.pipeline(transaction=False)
        for queue in queues:
            k = self.store.keys(queue)
            for key in k.ready_all:
                pipe.llen(key)
            pipe.zcard(k.scheduled)
            pipe.zcard(k.active)
        return not any(await pipe.execute())

    async def names(self) -> list[str]:
        """Every queue name ever used, sorted."""
        members = await self.redis.smembers(queues_registry(self.store.config.prefix))
        return sorted(str(m) for m in members)

    async def known(self, queue: str) -> bool:
        """True when ``queue`` is in the queue registry."""
        self.store.keys(queue)  # validates the name
        return bool(await self.redis.sismember(queues_registry(self.store.config.prefix), queue))

    # -- counts ---------------------------------------------------------------------------------
    async def stats(self, queues: Sequence[str]) -> list[QueueStats]:
        """Counts, counters, throughput and oldest waiting age of each queue, in two round trips."""
        if not queues:
            return []
        keys = [self.store.keys(q) for q in queues]
        first = NamedPipeline(self.redis)
        first.add("time", "time")
        for k in keys:
            q = k.queue
            for p, ready in zip(PRIORITIES, k.ready_all, strict=True):
                first.add((q, "queued", p.value), "llen", ready)
                first.add((q, "head", p.value), "lindex", ready, 0)
            first.add((q, "scheduled"), "zcard", k.scheduled)
            first.add((q, "active"), "zcard", k.active)
            first.add((q, "dead"), "zcard", k.dead)
            first.add((q, "done"), "zcard", k.done)
            first.add((q, "counters"), "hgetall", k.stats)
            first.add((q, "paused"), "exists", k.paused)
            first.add((q, "sample"), "zrandmember", k.scheduled, RETRYING_SAMPLE)
        row = await first.execute()
        server_time = row["time"]
        now = self.store.clock_arg() or int(server_time[0]) * 1000 + int(server_time[1]) // 1000

        second = NamedPipeline(self.redis)
        for k in keys:
            q = k.queue
            second.add((q, "finished"), "zcount", k.done, f"({now - THROUGHPUT_WINDOW_MS}", "+inf")
            for p in PRIORITIES:
                head = row[(q, "head", p.value)]
                if head:
                    second.add((q, "waiting_since", p.value), "hget", k.job(head), "scheduled_for")
            for i, job_id in enumerate(row[(q, "sample")] or []):
                second.add((q, "sample_status", i), "hget", k.job(job_id), "status")
        extra = await second.execute()
        return [self._queue_stats(k.queue, row, extra, now) for k in keys]

    @staticmethod
    def _queue_stats(q: str, row: dict[Any, Any], extra: dict[Any, Any], now: int) -> QueueStats:
        by_priority = {p.value: int(row[(q, "queued", p.value)]) for p in PRIORITIES}
        scheduled = int(row[(q, "scheduled")])
        sample = [extra[(q, "sample_status", i)] for i in range(len(row[(q, "sample")] or []))]
        retrying = sum(1 for status in sample if status == "retrying")
        if sample and scheduled > len(sample):
            retrying = round(retrying * scheduled / len(sample))
        since = [lenient_int(extra.get((q, "waiting_since", p.value))) for p in PRIORITIES]
        waiting_since = [v for v in since if v is not None]
        raw = row[(q, "counters")] or {}
        return QueueStats(
            name=q,
            paused=bool(row[(q, "paused")]),
            queued=sum(by_priority.values()),
            queued_by_priority=by_priority,
            scheduled=scheduled,
            retrying=retrying,
            active=int(row[(q, "active")]),
            dead=int(row[(q, "dead")]),
            done=int(row[(q, "done")]),
            finished_last_minute=int(extra[(q, "finished")]),
            oldest_waiting_ms=max(0, now - min(waiting_since)) if waiting_since else None,
            counters={name: lenient_int(raw.get(name)) or 0 for name in COUNTERS},
            now_ms=now,
        )

    # -- pause ----------------------------------------------------------------------------------
    async def pause(self, queue: str) -> None:
        """Stop workers from taking jobs of ``queue`` (jobs still enqueue and promote)."""
        k = self.store.keys(queue)
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(k.paused, "1")
        pipe.sadd(queues_registry(self.store.config.prefix), queue)
        await pipe.execute()

    async def resume(self, queue: str) -> None:
        """Let workers take jobs of ``queue`` again, and wake one at once."""
        k = self.store.keys(queue)
        now = await self.now_ms()
        pipe = self.redis.pipeline(transaction=False)
        pipe.delete(k.paused)
        pipe.zadd(k.marker, {"m": now})  # same wake-up marker the scripts write
        await pipe.execute()

    # -- dead-letter queue ----------------------------------------------------------------------
    async def _dead_chunks(self, queue: str, ids: Sequence[str] | None) -> AsyncIterator[list[str]]:
        """Yield chunks of ids in the DLQ of ``queue``: the given ``ids`` that are there, or all."""
        k = self.store.keys(queue)
        if ids is not None:
            unique = list(dict.fromkeys(ids))
            for start in range(0, len(unique), DLQ_CHUNK):
                chunk = unique[start : start + DLQ_CHUNK]
                pipe = self.redis.pipeline(transaction=False)
                for job_id in chunk:
                    pipe.zscore(k.dead, job_id)
                scores = await pipe.execute()
                yield [job_id for job_id, score in zip(chunk, scores, strict=True) if score is not None]
            return
        cursor = 0
        while True:
            cursor, members = await self.redis.zscan(k.dead, cursor, count=DLQ_CHUNK)
            if members:
                yield [str(member) for member, _ in members]
            if cursor == 0:
                return

    async def _of_type(self, k: QueueKeys, ids: list[str], job_type: str | None) -> list[str]:
        if job_type is None or not ids:
            return ids
        pipe = self.redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hget(k.job(job_id), "type")
        types = await pipe.execute()
        return [job_id for job_id, t in zip(ids, types, strict=True) if t == job_type]

    async def _dead_selection(
        self, k: QueueKeys, job_type: str | None, ids: Sequence[str] | None
    ) -> AsyncIterator[list[str]]:
        """Non-empty chunks of the dead jobs of ``k.queue`` that match ``job_type`` and ``ids``."""
        async for chunk in self._dead_chunks(k.queue, ids):
            selected = await self._of_type(k, chunk, job_type)
            if selected:
                yield selected

    async def dead_replay(self, queue: str, *, job_type: str | None = None, ids: Sequence[str] | None = None) -> int:
        """Replay dead jobs of ``queue`` (all, or those of ``job_type`` and/or in ``ids``); returns how many."""
        s = self.store
        k = s.keys(queue)
        replayed = 0
        async for selected in self._dead_selection(k, job_type, ids):
            if is_cluster(self.redis):  # redis-py refuses scripts in cluster pipelines: side by side instead
                replies = await asyncio.gather(
                    *(
                        s.scripts.replay(k, job_id, [job_id, s.clock_arg(), s.config.events_maxlen])
                        for job_id in selected
                    )
                )
                replayed += sum(1 for reply in replies if int(reply[0]) == JobChangeCode.DONE)
                continue
            pipe = self.redis.pipeline(transaction=False)
            for job_id in selected:
                await s.scripts.replay(k, job_id, [job_id, s.clock_arg(), s.config.events_maxlen], pipe)
            waited = s.scripts.add_wait(pipe)
            replies = await pipe.execute()
            if waited:
                s.scripts.check_wait(replies.pop())
            replayed += sum(1 for reply in replies if int(reply[0]) == JobChangeCode.DONE)
        return replayed

    async def dead_purge(self, queue: str, *, job_type: str | None = None, ids: Sequence[str] | None = None) -> int:
        """Delete dead jobs of ``queue`` for good (hashes, DLQ entries, idempotency keys); returns how many."""
        k = self.store.keys(queue)
        purged = 0
        async for selected in self._dead_selection(k, job_type, ids):
            pipe = self.redis.pipeline(transaction=False)
            for job_id in selected:
                pipe.hmget(k.job(job_id), "status", "idempotency_key")
            fields = await pipe.execute()
            # A job replayed since the scan is no longer dead: leave it alone.
            doomed = [(i, f[1]) for i, f in zip(selected, fields, strict=True) if f[0] in ("dead", None)]
            idem = [(job_id, k.idem(key)) for job_id, key in doomed if key]
            pipe = self.redis.pipeline(transaction=False)
            for _, idem_key in idem:
                pipe.get(idem_key)
            owners = await pipe.execute() if idem else []
            pipe = self.redis.pipeline(transaction=False)
            for job_id, _ in doomed:
                pipe.delete(k.job(job_id))
                pipe.zrem(k.dead, job_id)
            for (job_id, idem_key), owner in zip(idem, owners, strict=True):
                if owner is not None and owner.partition(" ")[0] == job_id:  # "<id> <request fingerprint>"
                    pipe.delete(idem_key)
            if doomed:
                await pipe.execute()
            purged += len(doomed)
        return purged
