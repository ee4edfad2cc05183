"""Traces: the HTTP request (here a parent span) -> the enqueue span -> the worker's run span, in one trace."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tickr.metrics import tracing

ROOT = Path(__file__).resolve().parents[2]
pytest.importorskip("opentelemetry.sdk")


def test_one_trace_runs_from_the_request_to_the_job(redis_url: str, queue: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.observability.trace_probe", redis_url, queue],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    spans = {s["name"]: s for s in json.loads(done.stdout.strip().splitlines()[-1])["spans"]}
    request, enqueue, run = spans["http request"], spans["tickr enqueue probe.traced"], spans["tickr run probe.traced"]
    assert request["trace"] == enqueue["trace"] == run["trace"]
    assert enqueue["parent"] == request["span"] and run["parent"] == enqueue["span"]
    assert (enqueue["kind"], run["kind"]) == ("PRODUCER", "CONSUMER")
    attrs = run["attributes"]
    assert attrs["tickr.outcome"] == "succeeded" and attrs["tickr.job.attempt"] == 1
    assert attrs["messaging.destination.name"] == queue and attrs["tickr.job.type"] == "probe.traced"


def test_no_provider_means_no_spans_and_no_traceparent() -> None:
    assert not tracing.active()  # this interpreter configured none: the hot path takes the plain branch
    assert tracing.enqueue_span([]) is tracing.enqueue_span([])  # the one shared null context
