"""Counters and histograms for the worker's hot path that need no lock: updated on one thread only.

prometheus-client takes a lock for every increment (three for a histogram observation): about 4 µs per job,
6% of a no-op drain. The worker counts on its event loop alone, so plain Python numbers do, and a collector
turns them into the same families at scrape time (the scrape thread only reads them). Under prometheus
multiprocess mode (a supervisor's children) the library's own values are used instead: only they are merged.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterable, Sequence

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector, CollectorRegistry


class Tally:
    """One counter child."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class Spread:
    """One histogram child: a count per bucket (not cumulative) and the sum."""

    __slots__ = ("buckets", "counts", "sum")

    def __init__(self, buckets: Sequence[float]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.buckets, value)] += 1  # the first bucket whose bound is >= value
        self.sum += value


class _Family:
    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, tuple(labelnames)
        self.children: dict[tuple[str, ...], Tally | Spread] = {}
        self.lock = threading.Lock()  # taken to add a child and to copy the children, never to count


class LoopCounter(_Family):
    def labels(self, *values: str) -> Tally:
        child = self.children.get(values)
        if child is None:
            with self.lock:
                child = self.children.setdefault(values, Tally())
        assert isinstance(child, Tally)
        return child


class LoopHistogram(_Family):
    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], buckets: Sequence[float]) -> None:
        super().__init__(name, documentation, labelnames)
        self.buckets = tuple(buckets)

    def labels(self, *values: str) -> Spread:
        child = self.children.get(values)
        if child is None:
            with self.lock:
                child = self.children.setdefault(values, Spread(self.buckets))
        assert isinstance(child, Spread)
        return child


class LoopMetrics(Collector):
    """The families made here, exposed with the same names and types as prometheus-client's own."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.families: list[_Family] = []
        if registry is not None:
            registry.register(self)

    def counter(self, name: str, documentation: str, labelnames: Sequence[str]) -> LoopCounter:
        family = LoopCounter(name, documentation, labelnames)
        self.families.append(family)
        return family

    def histogram(
        self, name: str, documentation: str, labelnames: Sequence[str], buckets: Sequence[float]
    ) -> LoopHistogram:
        family = LoopHistogram(name, documentation, labelnames, buckets)
        self.families.append(family)
        return family

    def describe(self) -> Iterable[Metric]:
        return self.collect()

    def collect(self) -> Iterable[Metric]:
        for family in self.families:
            with family.lock:
                children = list(family.children.items())
            if isinstance(family, LoopHistogram):
                hist = HistogramMetricFamily(family.name, family.documentation, labels=family.labelnames)
                for values, child in children:
                    assert isinstance(child, Spread)
                    counts, running, cumulative = list(child.counts), 0, []
                    for bound, n in zip([*map(_bound, family.buckets), "+Inf"], counts, strict=True):
                        running += n
                        cumulative.append((bound, float(running)))
                    hist.add_metric(list(values), cumulative, child.sum)
                yield hist
            else:
                counter = CounterMetricFamily(family.name, family.documentation, labels=family.labelnames)
                for values, child in children:
                    assert isinstance(child, Tally)
                    counter.add_metric(list(values), child.value)
                yield counter


def _bound(value: float) -> str:
    return repr(float(value))
