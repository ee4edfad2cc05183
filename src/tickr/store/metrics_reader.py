"""The scrape-time read behind tickr's queue gauges: depths, in-flight, DLQ, workers and oldest wait of every
queue, in one pipelined round trip whatever the number of queues (never one per queue)."""

from __future__ import annotations

import functools
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tickr.core.job import PRIORITIES
from tickr.store.boundary import store_boundary
from tickr.store.keys import queues_registry, worker_info, workers_registry
from tickr.store.queue_admin import NamedPipeline

if TYPE_CHECKING:
    from tickr.store.store import RedisStore

MAX_WORKERS = 1_000
REGISTRY_TTL_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class QueueGauges:
    """One queue at one instant."""

    queue: str
    ready: dict[str, int]  # priority -> ready jobs
    scheduled: int
    active: int
    dead: int
    workers: int
    oldest_waiting_seconds: float  # 0 when nothing is ready


@dataclass(frozen=True, slots=True)
class GaugeSnapshot:
    now_ms: int
    queues: list[QueueGauges] = field(default_factory=list)


@store_boundary
class MetricsReader:
    """``store.metrics``: what the Prometheus collector reads from Redis at each scrape.

    One round trip per scrape for any number of queues: the server clock, one ``queue_gauges`` script call per
    queue and the workers' queues, pipelined. The queue and worker registries are re-read (a second round trip)
    only when they are older than ``registry_ttl`` seconds, so a new queue or worker shows within that time.
    """

    def __init__(self, store: RedisStore, registry_ttl: float = REGISTRY_TTL_SECONDS) -> None:
        self.store = store
        self.registry_ttl = registry_ttl
        self._registry: tuple[float, list[str], list[str]] | None = None  # (read at, queues, workers)

    async def _registries(self) -> tuple[list[str], list[str]]:
        now = time.monotonic()
        if self._registry is None or now - self._registry[0] >= self.registry_ttl:
            prefix = self.store.config.prefix
            pipe = NamedPipeline(self.store.redis)
            pipe.add("queues", "smembers", queues_registry(prefix))
            pipe.add("workers", "zrevrange", workers_registry(prefix), 0, MAX_WORKERS - 1)
            row = await pipe.execute()
            queues = sorted(str(q) for q in row["queues"])
            self._registry = (now, queues, [str(w) for w in row["workers"]])
        return self._registry[1], self._registry[2]

    async def snapshot(self) -> GaugeSnapshot:
        """Every queue's gauges at one instant of the server clock."""
        store, prefix = self.store, self.store.config.prefix
        names, workers = await self._registries()
        pipe = NamedPipeline(store.redis)
        pipe.add("time", "time")
        for q in names:
            k = store.keys(q)
            await pipe.add_script(q, functools.partial(store.scripts.queue_gauges, k, [k.job_prefix]))
        for w in workers:
            pipe.add(("worker", w), "hget", worker_info(w, prefix), "queues")
        row = await pipe.execute()
        seconds, micros = row["time"]
        now = store.clock_arg() or int(seconds) * 1000 + int(micros) // 1000
        serving: Counter[str] = Counter()
        for w in workers:
            for q in str(row[("worker", w)] or "").split(","):
                if q:
                    serving[q] += 1
        out = []
        for q in names:
            *ready, scheduled, active, dead, oldest = (int(v) for v in row[q])
            out.append(
                QueueGauges(
                    queue=q,
                    ready={p.value: n for p, n in zip(PRIORITIES, ready, strict=True)},
                    scheduled=scheduled,
                    active=active,
                    dead=dead,
                    workers=serving[q],
                    oldest_waiting_seconds=max(0, now - oldest) / 1000 if oldest >= 0 else 0.0,
                )
            )
        return GaugeSnapshot(now, out)
