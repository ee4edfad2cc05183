"""Facts about the server and the footprint of a queue, for ``tickr bench``, ``tickr load`` and operators."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tickr.store.boundary import store_boundary

if TYPE_CHECKING:
    from tickr.store.store import RedisStore


@store_boundary
class Diagnostics:
    """Server version and allocator, memory use, and what one job and one event stream cost."""

    def __init__(self, store: RedisStore) -> None:
        self._store = store

    async def server(self) -> dict[str, str]:
        """``{"server": "valkey 8.1.1", "allocator": "jemalloc-5.3.0"}`` (Redis or Valkey, from ``INFO``)."""
        redis = self._store.redis
        info = await redis.info("server")
        memory = await redis.info("memory")
        kind = "valkey" if "valkey_version" in info else "redis"
        version = info.get("valkey_version") or info.get("redis_version")
        return {"server": f"{kind} {version}", "allocator": str(memory.get("mem_allocator", "?"))}

    async def work(self) -> tuple[float, int]:
        """The server's CPU seconds so far (``used_cpu_sys`` + ``used_cpu_user``) and the commands it has run
        (``INFO commandstats`` calls, commands inside scripts included): take two readings and subtract."""
        redis = self._store.redis
        cpu = await redis.info("cpu")
        stats = await redis.info("commandstats")
        calls = sum(int(entry.get("calls", 0)) for entry in stats.values() if isinstance(entry, dict))
        return float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]), calls

    async def used_memory(self) -> int:
        """The server's ``used_memory`` in bytes."""
        return int((await self._store.redis.info("memory"))["used_memory"])

    async def footprint(self, queue: str, job_id: str) -> dict[str, Any]:
        """``MEMORY USAGE`` of one job hash and of the queue's event stream, the stream's length, the hash encoding."""
        redis, k = self._store.redis, self._store.keys(queue)
        job_key = k.job(job_id)
        return {
            "job_hash_bytes": int(await redis.memory_usage(job_key) or 0),
            "events_stream_bytes": int(await redis.memory_usage(k.events) or 0),
            "events_len": int(await redis.xlen(k.events)),
            "job_encoding": str(await redis.object("encoding", job_key)),
        }
