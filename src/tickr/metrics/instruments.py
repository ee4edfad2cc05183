"""tickr's Prometheus counters and histograms, with label children cached so the hot path pays one dict lookup.

One ``Instruments`` per process (``instruments()``), registered on prometheus-client's default registry, so a
user's own metrics share the endpoint. Under a supervisor the children run in prometheus multiprocess mode
(``PROMETHEUS_MULTIPROC_DIR`` is set before they import prometheus-client) and the supervisor merges them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

from tickr.core.job import PRIORITIES, Job
from tickr.metrics.loop_metrics import LoopCounter, LoopHistogram, LoopMetrics

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# 1 ms to 10 min: handler run times and waits span both ends.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
TYPE_CAP = 100  # distinct task types per process; the rest fold into type="other" (labels stay bounded)
OTHER = "other"

SUCCEEDED, RETRIED, DEAD, STALE = "succeeded", "retried", "dead", "stale"


class _PerType:
    """The children of one (queue, type): run time, succeeded, failed, retried, dead."""

    __slots__ = ("dead", "failed", "retried", "run", "succeeded")

    def __init__(self, m: Instruments, queue: str, job_type: str) -> None:
        self.run = m.job_run_seconds.labels(queue, job_type)
        self.succeeded = m.jobs_succeeded.labels(queue, job_type)
        self.failed = m.jobs_failed.labels(queue, job_type)
        self.retried = m.jobs_retried.labels(queue, job_type)
        self.dead = m.jobs_dead.labels(queue, job_type)


class Instruments:
    """Every counter and histogram tickr records. Methods take whole jobs; children are made once per label set."""

    def __init__(
        self, registry: CollectorRegistry | None = REGISTRY, type_cap: int = TYPE_CAP, *, lock_free: bool | None = None
    ) -> None:
        r = registry
        qt = ("queue", "type")
        # The per-job families count without locks (loop_metrics.py), except in multiprocess mode.
        if lock_free is None:
            lock_free = MULTIPROC_ENV not in os.environ
        hot = LoopMetrics(r) if lock_free else None

        def counter(name: str, doc: str, labels: tuple[str, ...]) -> Counter | LoopCounter:
            return hot.counter(name, doc, labels) if hot else Counter(name, doc, labels, registry=r)

        def histogram(name: str, doc: str, labels: tuple[str, ...]) -> Histogram | LoopHistogram:
            if hot:
                return hot.histogram(name, doc, labels, BUCKETS)
            return Histogram(name, doc, labels, buckets=BUCKETS, registry=r)

        self.jobs_enqueued = Counter(
            "tickr_jobs_enqueued", "Jobs created by enqueue", ("queue", "priority", "type"), registry=r
        )
        self.jobs_dequeued = counter("tickr_jobs_dequeued", "Jobs leased by workers", ("queue", "priority"))
        self.jobs_succeeded = counter("tickr_jobs_succeeded", "Jobs that ran to success", qt)
        self.jobs_failed = counter("tickr_jobs_failed", "Failed attempts (retried or dead)", qt)
        self.jobs_retried = counter("tickr_jobs_retried", "Failed attempts scheduled for a retry", qt)
        self.jobs_dead = counter("tickr_jobs_dead", "Jobs moved to the dead-letter queue by a worker", qt)
        self.jobs_reaped = Counter("tickr_jobs_reaped", "Expired leases handled by a reaper", ("queue",), registry=r)
        self.acks = Counter("tickr_acks", "Successes written to Redis", ("queue",), registry=r)
        self.stale_acks = Counter(
            "tickr_stale_acks", "Acks and fails refused: the lease was held by another worker", ("queue",), registry=r
        )
        self.schedule_fires = Counter("tickr_schedule_fires", "Occurrences fired", ("schedule",), registry=r)
        self.schedule_misfires = Counter("tickr_schedule_misfires", "Occurrences missed (misfire policy)", registry=r)
        self.job_run_seconds = histogram("tickr_job_run_seconds", "Handler run time", qt)
        self.job_wait_seconds = histogram(
            "tickr_job_wait_seconds", "Time from due (or enqueue) to start", ("queue", "priority")
        )
        self.type_cap = type_cap
        self._types: set[str] = set()
        self._started: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._per_type: dict[tuple[str, str], _PerType] = {}
        self._enqueued: dict[tuple[str, str, str], Any] = {}  # (queue, priority, type) -> counter child
        self._lock = threading.Lock()  # only for making children; counting itself is the library's

    def type_label(self, job_type: str) -> str:
        """``job_type``, or ``"other"`` once ``type_cap`` distinct types were seen."""
        if job_type in self._types:
            return job_type
        with self._lock:
            if len(self._types) < self.type_cap:
                self._types.add(job_type)
                return job_type
        return OTHER

    def serving(self, queues: Iterable[str]) -> None:
        """Export the per-queue counters of ``queues`` at 0 now: ``increase()`` and alerts see their first change."""
        for queue in queues:
            for child in (self.acks, self.stale_acks, self.jobs_reaped):
                child.labels(queue)
            for priority in PRIORITIES:
                self.jobs_dequeued.labels(queue, priority.value)

    # -- enqueuers ------------------------------------------------------------------------------
    def enqueued(self, jobs: Iterable[Job]) -> None:
        """Count jobs that enqueue created (not those an idempotency key matched)."""
        children = self._enqueued
        for job in jobs:
            key = (job.queue, job.priority, job.type)
            child = children.get(key)
            if child is None:
                labels = (job.queue, job.priority.value, self.type_label(job.type))
                child = children[key] = self.jobs_enqueued.labels(*labels)
            child.inc()

    # -- workers (hot path) ---------------------------------------------------------------------
    def started(self, job: Job) -> None:
        """A job was leased and starts: dequeued, and its wait from due time (or enqueue) to start."""
        key = (job.queue, job.priority)
        children = self._started.get(key)
        if children is None:
            children = self._started[key] = (
                self.jobs_dequeued.labels(job.queue, job.priority.value),
                self.job_wait_seconds.labels(job.queue, job.priority.value),
            )
        children[0].inc()
        since = job.scheduled_for or job.created_at
        if since is not None and job.started_at is not None:
            children[1].observe(max(0, job.started_at - since) / 1000)

    def finished(self, job: Job, seconds: float, outcome: str) -> None:
        """An attempt ended: its run time, and ``succeeded``, ``retried``, ``dead`` or ``stale``."""
        key = (job.queue, job.type)
        children = self._per_type.get(key)
        if children is None:
            children = self._per_type[key] = _PerType(self, job.queue, self.type_label(job.type))
        children.run.observe(seconds)
        if outcome == SUCCEEDED:
            children.succeeded.inc()
            return
        if outcome == STALE:
            self.stale_acks.labels(job.queue).inc()
            return
        children.failed.inc()
        (children.retried if outcome == RETRIED else children.dead).inc()

    def acked(self, queue: str, acked: int, stale: int) -> None:
        """One batch of acks written: ``acked`` landed, ``stale`` were refused."""
        if acked:
            self.acks.labels(queue).inc(acked)
        if stale:
            self.stale_acks.labels(queue).inc(stale)

    def reaped(self, queue: str, count: int) -> None:
        if count:
            self.jobs_reaped.labels(queue).inc(count)

    # -- schedulers -----------------------------------------------------------------------------
    def fired(self, schedule_id: str, runs: int, misfired: int) -> None:
        if runs:
            self.schedule_fires.labels(schedule_id).inc(runs)
        if misfired:
            self.schedule_misfires.inc(misfired)


_instruments: Instruments | None = None
_made = threading.Lock()


def instruments(enabled: bool = True) -> Instruments | None:
    """The process's instruments (made on first use), or None when metrics are off (``TICKR_METRICS=false``)."""
    global _instruments
    if not enabled:
        return None
    if _instruments is None:
        with _made:
            if _instruments is None:
                _instruments = Instruments()
    return _instruments
