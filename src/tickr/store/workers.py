"""The worker registry in Redis: heartbeat entries (a hash with a TTL), the zset of ids by last heartbeat,
each queue's ``beats`` zset (liveness, in the queue's slot, for ``release_lapsed``), and the task types each
worker runs (per queue, for dequeue) with their defaults (for the API)."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from tickr.store import codec
from tickr.store.boundary import store_boundary
from tickr.store.codec import lenient_int
from tickr.store.keys import task_registry, worker_info, workers_registry
from tickr.store.queue_admin import NamedPipeline

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
    types: list[str] = field(default_factory=list)  # task types it runs ("*": any)


@store_boundary
class WorkerRegistry:
    """Register, refresh and list workers. An entry expires ``ttl_seconds`` after its last heartbeat."""

    def __init__(self, store: RedisStore) -> None:
        self._store = store

    async def register(
        self,
        worker_id: str,
        queues: Sequence[str],
        concurrency: int,
        in_flight: int,
        ttl_seconds: int,
        tasks: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> int:
        """Write (or refresh) the worker's entry and the task types it runs on each queue, with their
        defaults (``tasks``: type -> JSON-able defaults; None: any type). Returns the heartbeat's server time."""
        store = self._store
        prefix = store.config.prefix
        key = worker_info(worker_id, prefix)
        types = sorted(tasks) if tasks is not None else ["*"]
        sent = store.clock.local_ms()
        first = NamedPipeline(store.redis)  # TIME beside the pipeline on a cluster (keyless: refused in one)
        first.add("time", "time")
        first.add(
            "info",
            "hset",
            key,
            mapping={
                "id": worker_id,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "queues": ",".join(queues),
                "concurrency": concurrency,
                "in_flight": in_flight,
                "types": ",".join(types),
            },
        )
        first.add("ttl", "expire", key, ttl_seconds)
        seconds, micros = (await first.execute())["time"]
        now_ms = store.clock_arg() or int(seconds) * 1000 + int(micros) // 1000
        store.clock.observe(now_ms, sent, store.clock.local_ms())
        pipe = store.redis.pipeline(transaction=False)
        self._add_beats(pipe, worker_id, queues, now_ms)
        if tasks:
            pipe.hset(task_registry(prefix), mapping={name: codec.dumps(dict(d)) for name, d in tasks.items()})
        self._add_types(pipe, worker_id, queues, types, ttl_seconds, now_ms)
        await pipe.execute()
        return now_ms

    async def beat(self, worker_id: str, queues: Sequence[str], now_ms: int) -> None:
        """The light heartbeat: the worker is alive at server time ``now_ms`` (one pipelined round trip).
        Refreshes its score in each queue's ``beats`` (which ``release_lapsed`` reads) and in the registry."""
        pipe = self._store.redis.pipeline(transaction=False)
        self._add_beats(pipe, worker_id, queues, now_ms)
        await pipe.execute()

    def _add_beats(self, pipe: Any, worker_id: str, queues: Sequence[str], now_ms: int) -> None:
        pipe.zadd(workers_registry(self._store.config.prefix), {worker_id: now_ms})
        for queue in queues:
            pipe.zadd(self._store.keys(queue).beats, {worker_id: now_ms})

    async def register_types(self, worker_id: str, queues: Sequence[str], types: Sequence[str], ttl: int) -> None:
        """(Re-)register only the task types ``worker_id`` runs on ``queues`` (``["*"]``: any)."""
        now_ms = await self._store.server_time_ms()
        pipe = self._store.redis.pipeline(transaction=False)
        self._add_types(pipe, worker_id, queues, types, ttl, now_ms)
        await pipe.execute()

    def _add_types(
        self, pipe: Any, worker_id: str, queues: Sequence[str], types: Sequence[str], ttl: int, now_ms: int
    ) -> None:
        for queue in queues:
            k = self._store.keys(queue)
            own = k.worker_types(worker_id)
            pipe.delete(own)
            pipe.sadd(own, *types)
            pipe.expire(own, ttl)
            named = [t for t in types if t != "*"]
            if named:
                pipe.zadd(k.types, dict.fromkeys(named, now_ms))

    async def tasks(self) -> dict[str, dict[str, Any]]:
        """Every task type a worker has registered, with the defaults it registered last."""
        raw = await self._store.redis.hgetall(task_registry(self._store.config.prefix))
        return {str(name): codec.loads(value) for name, value in raw.items()}

    async def deregister(self, worker_id: str, queues: Sequence[str] = ()) -> None:
        prefix = self._store.config.prefix
        pipe = self._store.redis.pipeline(transaction=False)
        pipe.delete(worker_info(worker_id, prefix))
        pipe.zrem(workers_registry(prefix), worker_id)
        for queue in queues:
            pipe.delete(self._store.keys(queue).worker_types(worker_id))
            pipe.zrem(self._store.keys(queue).beats, worker_id)
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
                    pid=lenient_int(info.get("pid")),
                    queues=[q for q in str(info.get("queues", "")).split(",") if q],
                    concurrency=lenient_int(info.get("concurrency")),
                    in_flight=lenient_int(info.get("in_flight")),
                    last_heartbeat_ms=int(score),
                    types=[t for t in str(info.get("types", "")).split(",") if t],
                )
            )
        return out
