"""The instruments: outcomes land on the right counters, labels stay bounded, merged expositions sum."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tickr.core.job import Job, Priority
from tickr.metrics.exposition import Merged
from tickr.metrics.instruments import DEAD, OTHER, RETRIED, STALE, SUCCEEDED, Instruments


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def test_outcomes_count_on_their_counters() -> None:
    registry = CollectorRegistry()
    m = Instruments(registry)
    job = Job(id="1", type="t", queue="q", priority=Priority.HIGH, created_at=1_000, started_at=1_250)
    m.started(job)
    for outcome in (SUCCEEDED, RETRIED, DEAD, STALE):
        m.finished(job, 0.01, outcome)
    assert _value(registry, "tickr_jobs_dequeued_total", queue="q", priority="high") == 1
    assert _value(registry, "tickr_job_wait_seconds_sum", queue="q", priority="high") == 0.25
    assert _value(registry, "tickr_jobs_succeeded_total", queue="q", type="t") == 1
    assert _value(registry, "tickr_jobs_failed_total", queue="q", type="t") == 2
    assert _value(registry, "tickr_jobs_retried_total", queue="q", type="t") == 1
    assert _value(registry, "tickr_jobs_dead_total", queue="q", type="t") == 1
    assert _value(registry, "tickr_stale_acks_total", queue="q") == 1
    assert _value(registry, "tickr_job_run_seconds_count", queue="q", type="t") == 4


def test_unknown_types_beyond_the_cap_fold_into_other() -> None:
    registry = CollectorRegistry()
    m = Instruments(registry, type_cap=2)
    m.enqueued(Job(id=str(i), type=f"t{i}", queue="q") for i in range(5))
    assert _value(registry, "tickr_jobs_enqueued_total", queue="q", priority="default", type="t1") == 1
    assert _value(registry, "tickr_jobs_enqueued_total", queue="q", priority="default", type=OTHER) == 3


def test_serving_exports_per_queue_counters_at_zero() -> None:
    registry = CollectorRegistry()
    Instruments(registry).serving(["q"])
    text = generate_latest(registry).decode()
    assert 'tickr_stale_acks_total{queue="q"} 0.0' in text
    assert 'tickr_jobs_dequeued_total{priority="low",queue="q"} 0.0' in text


def test_merged_sums_equal_samples_into_one_family() -> None:
    a, b = CollectorRegistry(), CollectorRegistry()
    Instruments(a).acked("q", 2, 0)
    Instruments(b).acked("q", 3, 1)
    merged = CollectorRegistry()
    merged.register(Merged(a, b))
    families = [f for f in text_string_to_metric_families(generate_latest(merged).decode()) if f.name == "tickr_acks"]
    assert len(families) == 1
    totals = [s.value for s in families[0].samples if s.name == "tickr_acks_total"]
    assert totals == [5.0]
