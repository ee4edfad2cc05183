"""The queue gauges, read from Redis when ``/metrics`` is scraped (never sampled in a loop).

``QueueCollector.read()`` makes one snapshot (``store.metrics``: a fixed number of pipelined round trips
for all queues) and the history lag, if a hook is given; ``families()`` turns it into Prometheus families.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from tickr.store.metrics_reader import GaugeSnapshot
from tickr.store.store import RedisStore

log = logging.getLogger("tickr.metrics")

HistoryLag = Callable[[], Awaitable[float | None]]
"""Seconds the SQL history is behind the event streams (None: unknown)."""


def gauge_families(snapshot: GaugeSnapshot | None, history_lag: float | None) -> list[GaugeMetricFamily]:
    """The queue gauges of ``snapshot`` (none when Redis could not be read) and the history lag."""
    up = GaugeMetricFamily("tickr_redis_up", "1 when the scrape could read Redis, else 0")
    up.add_metric([], 1.0 if snapshot is not None else 0.0)
    families: list[GaugeMetricFamily] = [up]
    if snapshot is not None:
        depth = GaugeMetricFamily("tickr_queue_depth", "Ready jobs", labels=["queue", "priority"])
        scheduled = GaugeMetricFamily("tickr_scheduled_depth", "Delayed jobs and retries waiting", labels=["queue"])
        dead = GaugeMetricFamily("tickr_dead_depth", "Jobs in the dead-letter queue", labels=["queue"])
        inflight = GaugeMetricFamily("tickr_inflight", "Leased jobs (running)", labels=["queue"])
        workers = GaugeMetricFamily("tickr_workers", "Live workers serving the queue", labels=["queue"])
        oldest = GaugeMetricFamily(
            "tickr_oldest_waiting_seconds", "Age of the oldest ready job since it became due", labels=["queue"]
        )
        for g in snapshot.queues:
            for priority, count in g.ready.items():
                depth.add_metric([g.queue, priority], count)
            scheduled.add_metric([g.queue], g.scheduled)
            dead.add_metric([g.queue], g.dead)
            inflight.add_metric([g.queue], g.active)
            workers.add_metric([g.queue], g.workers)
            oldest.add_metric([g.queue], g.oldest_waiting_seconds)
        families += [depth, scheduled, dead, inflight, workers, oldest]
    if history_lag is not None:
        lag = GaugeMetricFamily("tickr_history_lag_seconds", "How far the SQL history is behind the event streams")
        lag.add_metric([], history_lag)
        families.append(lag)
    return families


class QueueCollector:
    """Reads the gauges of every queue at scrape time. ``history_lag``: the SQL history's lag (the API passes
    ``store.events.lag().seconds`` when ``TICKR_HISTORY`` is on); None exports no ``tickr_history_lag_seconds``."""

    def __init__(self, store: Callable[[], RedisStore], history_lag: HistoryLag | None = None) -> None:
        self._store = store
        self.history_lag = history_lag

    async def read(self) -> list[GaugeMetricFamily]:
        try:
            snapshot: GaugeSnapshot | None = await self._store().metrics.snapshot()
        except Exception as exc:  # a scrape must answer even when Redis does not: tickr_redis_up 0
            log.warning("metrics: could not read the queue gauges: %s", exc)
            snapshot = None
        lag = None
        if self.history_lag is not None:
            try:
                lag = await self.history_lag()
            except Exception as exc:
                log.warning("metrics: could not read the history lag: %s", exc)
        return gauge_families(snapshot, lag)


class Snapshot(Collector):
    """Families read beforehand, served by a registry as a collector (the async read happens outside it)."""

    def __init__(self, families: Iterable[GaugeMetricFamily]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[GaugeMetricFamily]:
        return iter(self._families)
