"""The admin path for whole queues: counts and throughput, pause/resume, the dead-letter queue, workers.

Job-level reads (get, list, cancel, replay, update) live in ``store/inspect.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

from tickr.core.job import PRIORITIES
from tickr.store.keys import QueueKeys, queues_registry, worker_info, workers_registry
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
MAX_WORKERS_LISTED = 1_000


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


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A live worker, from its heartbeat registry entry."""

    id: str
    host: str
    pid: int | None
    queues: list[str]
    concurrency: int | None
    in_flight: int | None
    last_heartbeat_ms: int


def _opt_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class QueueInspector:
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
        pipe = self.redis.pipeline(transaction=False)
        pipe.time()
        for k in keys:
            for ready in k.ready_all:
                pipe.llen(ready)
            for ready in k.ready_all:
                pipe.lindex(ready, 0)
            pipe.zcard(k.scheduled)
            pipe.zcard(k.active)
            pipe.zcard(k.dead)
            pipe.zcard(k.done)
            pipe.hgetall(k.stats)
            pipe.exists(k.paused)
            pipe.zrandmember(k.scheduled, RETRYING_SAMPLE)
        server_time, *first = await pipe.execute()
        now = self.store.clock_arg() or int(server_time[0]) * 1000 + int(server_time[1]) // 1000
        per_queue = len(first) // len(keys)
        rows = [first[i * per_queue : (i + 1) * per_queue] for i in range(len(keys))]

        pipe = self.redis.pipeline(transaction=False)
        for k, row in zip(keys, rows, strict=True):
            pipe.zcount(k.done, f"({now - THROUGHPUT_WINDOW_MS}", "+inf")
            for head in row[4:8]:
                if head:
                    pipe.hget(k.job(head), "scheduled_for")
                else:
                    pipe.echo("")
            sample = row[14] or []
            for job_id in sample:
                pipe.hget(k.job(job_id), "status")
        second = await pipe.execute()
        out, pos = [], 0
        for k, row in zip(keys, rows, strict=True):
            sample_size = len(row[14] or [])
            chunk = second[pos : pos + 5 + sample_size]
            pos += 5 + sample_size
            out.append(self._queue_stats(k, row, chunk, now))
        return out

    def _queue_stats(self, k: QueueKeys, row: list[Any], extra: list[Any], now: int) -> QueueStats:
        by_priority = {p.value: int(n) for p, n in zip(PRIORITIES, row[0:4], strict=True)}
        scheduled = int(row[8])
        sample = extra[5:]
        retrying = sum(1 for status in sample if status == "retrying")
        if sample and scheduled > len(sample):
            retrying = round(retrying * scheduled / len(sample))
        waiting_since = [int(v) for v in extra[1:5] if _opt_int(v) is not None]
        raw = row[12] or {}
        return QueueStats(
            name=k.queue,
            paused=bool(row[13]),
            queued=sum(by_priority.values()),
            queued_by_priority=by_priority,
            scheduled=scheduled,
            retrying=retrying,
            active=int(row[9]),
            dead=int(row[10]),
            done=int(row[11]),
            finished_last_minute=int(extra[0]),
            oldest_waiting_ms=max(0, now - min(waiting_since)) if waiting_since else None,
            counters={name: _opt_int(raw.get(name)) or 0 for name in COUNTERS},
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

    async def dead_retry(self, queue: str, *, job_type: str | None = None, ids: Sequence[str] | None = None) -> int:
        """Replay dead jobs of ``queue`` (all, or those of ``job_type`` and/or in ``ids``); returns how many."""
        s = self.store
        k = s.keys(queue)
        replayed = 0
        async for chunk in self._dead_chunks(queue, ids):
            selected = await self._of_type(k, chunk, job_type)
            if not selected:
                continue
            pipe = self.redis.pipeline(transaction=False)
            for job_id in selected:
                await s.scripts.replay(k, job_id, [job_id, s.clock_arg(), s.config.events_maxlen], pipe)
            replies = await pipe.execute()
            replayed += sum(1 for reply in replies if int(reply[0]) == 1)
        return replayed

    async def dead_purge(self, queue: str, *, job_type: str | None = None, ids: Sequence[str] | None = None) -> int:
        """Delete dead jobs of ``queue`` for good (hashes, DLQ entries, idempotency keys); returns how many."""
        k = self.store.keys(queue)
        purged = 0
        async for chunk in self._dead_chunks(queue, ids):
            selected = await self._of_type(k, chunk, job_type)
            if not selected:
                continue
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
                if owner == job_id:
                    pipe.delete(idem_key)
            if doomed:
                await pipe.execute()
            purged += len(doomed)
        return purged

    # -- workers --------------------------------------------------------------------------------
    async def workers(self) -> list[WorkerInfo]:
        """Workers whose heartbeat entry has not expired, most recent heartbeat first."""
        prefix = self.store.config.prefix
        entries = cast(
            "list[tuple[str, float]]",
            await self.redis.zrevrange(workers_registry(prefix), 0, MAX_WORKERS_LISTED - 1, withscores=True),
        )
        if not entries:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for worker_id, _ in entries:
            pipe.hgetall(worker_info(str(worker_id), prefix))
        infos = await pipe.execute()
        out = []
        for (worker_id, score), info in zip(entries, infos, strict=True):
            if not info:  # expired: the worker stopped beating
                continue
            out.append(
                WorkerInfo(
                    id=str(worker_id),
                    host=str(info.get("host", "")),
                    pid=_opt_int(info.get("pid")),
                    queues=[q for q in str(info.get("queues", "")).split(",") if q],
                    concurrency=_opt_int(info.get("concurrency")),
                    in_flight=_opt_int(info.get("in_flight")),
                    last_heartbeat_ms=int(score),
                )
            )
        return out
