"""The lock-free hot-path families expose exactly what prometheus-client's own would."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from tickr.core.factory import new_job
from tickr.metrics.instruments import DEAD, RETRIED, SUCCEEDED, Instruments


def exposition(lock_free: bool) -> list[str]:
    registry = CollectorRegistry()
    m = Instruments(registry, lock_free=lock_free)
    for i, seconds in enumerate((0.0005, 0.001, 0.0011, 0.3, 7.0, 900.0)):
        job = new_job("email" if i % 2 else "noop", {}, queue="q", priority="high" if i % 3 else "default")
        job.created_at, job.started_at = 1_000, 1_000 + i * 250
        m.started(job)
        m.finished(job, seconds, (SUCCEEDED, RETRIED, DEAD)[i % 3])
    text = generate_latest(registry).decode().splitlines()
    return sorted(line for line in text if "_created" not in line)


def test_lock_free_families_match_the_library_sample_for_sample() -> None:
    assert exposition(lock_free=True) == exposition(lock_free=False)
