"""Heartbeats: extend the leases of all in-flight jobs in one call per queue, and keep the worker registered."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable

from tickr.store.keys import worker_info, workers_registry
from tickr.store.store import RedisStore

log = logging.getLogger("tickr.worker")


class Heartbeat:
    """Every ``interval`` seconds: extend leases; cancel jobs whose lease another worker now holds."""

    def __init__(
        self,
        store: RedisStore,
        worker_id: str,
        queues: list[str],
        concurrency: int,
        leases: Callable[[], dict[str, list[tuple[str, str]]]],
        on_lost: Callable[[str, str], None],
        interval: float,
    ) -> None:
        self.store = store
        self.worker_id = worker_id
        self.queues = queues
        self.concurrency = concurrency
        self.leases = leases
        self.on_lost = on_lost
        self.interval = interval
        self.beats = 0

    async def run(self) -> None:
        while True:
            try:
                await self.beat()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep beating: a Redis blip must not kill the worker
                log.warning("heartbeat failed: %s", exc)
            await asyncio.sleep(self.interval)

    async def beat(self) -> None:
        """One heartbeat: extend every in-flight lease and refresh the worker's registry entry."""
        for queue, leases in self.leases().items():
            for job_id in await self.store.extend(queue, leases):
                self.on_lost(queue, job_id)
        await self.register()
        self.beats += 1

    async def register(self) -> None:
        prefix = self.store.config.prefix
        key = worker_info(self.worker_id, prefix)
        in_flight = sum(len(v) for v in self.leases().values())
        pipe = self.store.redis.pipeline(transaction=False)
        pipe.time()
        pipe.hset(
            key,
            mapping={
                "id": self.worker_id,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "queues": ",".join(self.queues),
                "concurrency": self.concurrency,
                "in_flight": in_flight,
            },
        )
        pipe.expire(key, max(3, int(self.interval * 3) + 1))
        seconds, micros = (await pipe.execute())[0]
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        await self.store.redis.zadd(workers_registry(prefix), {self.worker_id: now_ms})

    async def deregister(self) -> None:
        prefix = self.store.config.prefix
        pipe = self.store.redis.pipeline(transaction=False)
        pipe.delete(worker_info(self.worker_id, prefix))
        pipe.zrem(workers_registry(prefix), self.worker_id)
        await pipe.execute()
