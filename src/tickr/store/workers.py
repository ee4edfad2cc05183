"""The worker registry in Redis: heartbeat entries (a hash with a TTL) and the zset of ids by last heartbeat."""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from tickr.store.boundary import store_boundary
from tickr.store.keys import worker_info, workers_registry

if TYPE_CHECKING:
    from tickr.store.store import RedisStore

MAX_WORKERS_LISTED = 1_000


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


@store_boundary
class WorkerRegistry:
    """Register, refresh and list workers. An entry expires ``ttl_seconds`` after its last heartbeat."""

    def __init__(self, store: RedisStore) -> None:
        self._store = store

    async def register(
        self, worker_id: str, queues: Sequence[str], concurrency: int, in_flight: int, ttl_seconds: int
    ) -> int:
        """Write (or refresh) the worker's entry; returns the server time (ms) of the heartbeat."""
        store = self._store
        prefix = store.config.prefix
        key = worker_info(worker_id, prefix)
        sent = store.clock.local_ms()
        pipe = store.redis.pipeline(transaction=False)
        pipe.time()
        pipe.hset(
            key,
            mapping={
                "id": worker_id,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "queues": ",".join(queues),
                "concurrency": concurrency,
                "in_flight": in_flight,
            },
        )
        pipe.expire(key, ttl_seconds)
        seconds, micros = (await pipe.execute())[0]
        now_ms = store.clock_arg() or int(seconds) * 1000 + int(micros) // 1000
        store.clock.observe(now_ms, sent, store.clock.local_ms())
        await store.redis.zadd(workers_registry(prefix), {worker_id: now_ms})
        return now_ms

    async def deregister(self, worker_id: str) -> None:
        prefix = self._store.config.prefix
        pipe = self._store.redis.pipeline(transaction=False)
        pipe.delete(worker_info(worker_id, prefix))
        pipe.zrem(workers_registry(prefix), worker_id)
        await pipe.execute()

    async def live(self) -> list[WorkerInfo]:
        """Workers whose heartbeat entry has not expired, most recent heartbeat first."""
        redis, prefix = self._store.redis, self._store.config.prefix
        entries = cast(
            "list[tuple[str, float]]",
            await redis.zrevrange(workers_registry(prefix), 0, MAX_WORKERS_LISTED - 1, withscores=True),
        )
        if not entries:
            return []
        pipe = redis.pipeline(transaction=False)
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
