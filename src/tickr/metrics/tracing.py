"""OpenTelemetry traces, when ``opentelemetry-api`` is installed (``pip install tickr[otel]``) and the user
configured a tracer provider: enqueue opens a PRODUCER span and carries its context in the job (W3C
``traceparent``); the worker's run of the job is a CONSUMER span, its child. Without the package every
function here is a constant no-op (``ENABLED`` is False), so the hot path pays nothing; with the package but no
provider configured (``active()`` False) it pays one function call per job.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from typing import Any

from tickr.core.job import Job

try:
    from opentelemetry import propagate, trace
except ImportError:  # the optional extra is not installed
    ENABLED = False
    _tracer: Any = None
else:
    ENABLED = True
    _tracer = trace.get_tracer("tickr")  # a proxy: follows a provider set later

_NULL = contextlib.nullcontext()


_PROVIDER_RECHECK_SECONDS = 1.0
_checked_at = -_PROVIDER_RECHECK_SECONDS
_configured = False


def active() -> bool:
    """True when spans would be recorded: the API is installed and a tracer provider was configured.

    Called per job: without a provider it looks again at most once a second (OpenTelemetry reads the
    environment on every look), and once one is set it stays (a provider can be set only once).
    """
    global _checked_at, _configured
    if _configured or not ENABLED:
        return _configured
    now = time.monotonic()
    if now - _checked_at >= _PROVIDER_RECHECK_SECONDS:
        _checked_at = now
        _configured = not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    return _configured


def enqueue_span(jobs: Sequence[Job]) -> contextlib.AbstractContextManager[Any]:
    """A span around enqueuing ``jobs`` (one span for a batch) that stamps each job with its ``traceparent``."""
    if not active():
        return _NULL
    return _enqueue_span(jobs)


@contextlib.contextmanager
def _enqueue_span(jobs: Sequence[Job]) -> Iterator[Any]:
    first = jobs[0] if jobs else None
    attributes = {"messaging.system": "tickr", "messaging.batch.message_count": len(jobs)}
    if first is not None:
        attributes |= {"messaging.destination.name": first.queue, "tickr.job.type": first.type}
    name = f"tickr enqueue {first.type}" if first is not None and len(jobs) == 1 else "tickr enqueue"
    with _tracer.start_as_current_span(name, kind=trace.SpanKind.PRODUCER, attributes=attributes) as span:
        if span.get_span_context().is_valid:
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            parent = carrier.get("traceparent")
            for job in jobs:
                job.traceparent = parent
            if len(jobs) == 1:
                span.set_attribute("messaging.message.id", jobs[0].id)
        yield span


@contextlib.contextmanager
def run_span(job: Job) -> Iterator[Any]:
    """The span of one attempt of ``job``, a child of the span that enqueued it; set ``tickr.outcome`` on it."""
    parent = propagate.extract({"traceparent": job.traceparent}) if job.traceparent else None
    attributes = {
        "messaging.system": "tickr",
        "messaging.destination.name": job.queue,
        "messaging.message.id": job.id,
        "tickr.job.type": job.type,
        "tickr.job.attempt": job.attempt,
    }
    with _tracer.start_as_current_span(
        f"tickr run {job.type}", context=parent, kind=trace.SpanKind.CONSUMER, attributes=attributes
    ) as span:
        yield span
