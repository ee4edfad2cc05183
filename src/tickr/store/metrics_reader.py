"""The scrape-time read behind tickr's queue gauges: depths, in-flight, DLQ, workers and oldest wait of every
queue, in a fixed number of pipelined round trips whatever the number of queues (never one per queue)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tickr.core.job import PRIORITIES
from tickr.store.boundary import store_boundary
from tickr.store.codec import lenient_int
from tickr.store.keys import queues_registry, worker_info, workers_registry
from tickr.store.queue_admin import NamedPipeline

if TYPE_CHECKING:
    from tickr.store.store import RedisStore

MAX_WORKERS = 1_000


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
    """``store.metrics``: what the Prometheus collector reads from Redis at each scrape."""

    def __init__(self, store: RedisStore) -> None:
        self.store = store

    async def snapshot(self) -> GaugeSnapshot:
        """Every queue's gauges: (1) queue and worker registries, (2) per-queue counts and the workers'
        queues, (3) the due time of each non-empty ready list's head. Three round trips for any number of queues."""
        store, prefix = self.store, self.store.config.prefix
        first = NamedPipeline(store.redis)
        first.add("time", "time")
        first.add("queues", "smembers", queues_registry(prefix))
        first.add("workers", "zrevrange", workers_registry(prefix), 0, MAX_WORKERS - 1)
        row = await first.execute()
        seconds, micros = row["time"]
        now = store.clock_arg() or int(seconds) * 1000 + int(micros) // 1000
        names = sorted(str(q) for q in row["queues"])
        workers = [str(w) for w in row["workers"]]
        if not names:
            return GaugeSnapshot(now)

        second = NamedPipeline(store.redis)
        for q in names:
            k = store.keys(q)
            for p, ready in zip(PRIORITIES, k.ready_all, strict=True):
                second.add((q, "ready", p.value), "llen", ready)
                second.add((q, "head", p.value), "lindex", ready, 0)
            second.add((q, "scheduled"), "zcard", k.scheduled)
            second.add((q, "active"), "zcard", k.active)
            second.add((q, "dead"), "zcard", k.dead)
        for w in workers:
            second.add(("worker", w), "hget", worker_info(w, prefix), "queues")
        counts = await second.execute()
        serving: Counter[str] = Counter()
        for w in workers:
            for q in str(counts[("worker", w)] or "").split(","):
                if q:
                    serving[q] += 1

        third, heads = NamedPipeline(store.redis), 0
        for q in names:
            for p in PRIORITIES:
                head = counts[(q, "head", p.value)]
                if head:
                    third.add((q, p.value), "hget", store.keys(q).job(str(head)), "scheduled_for")
                    heads += 1
        since = await third.execute() if heads else {}
        out = []
        for q in names:
            due = [lenient_int(since.get((q, p.value))) for p in PRIORITIES]
            oldest = min((d for d in due if d is not None), default=None)
            out.append(
                QueueGauges(
                    queue=q,
                    ready={p.value: int(counts[(q, "ready", p.value)]) for p in PRIORITIES},
                    scheduled=int(counts[(q, "scheduled")]),
                    active=int(counts[(q, "active")]),
                    dead=int(counts[(q, "dead")]),
                    workers=serving[q],
                    oldest_waiting_seconds=max(0, now - oldest) / 1000 if oldest is not None else 0.0,
                )
            )
        return GaugeSnapshot(now, out)
