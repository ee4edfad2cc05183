"""Run by test_tracing in a fresh interpreter (a tracer provider is process-wide): enqueue one job inside a
parent span, run it with a burst worker, print the finished spans as JSON."""

from __future__ import annotations

import asyncio
import json
import sys

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import tickr
from tickr.worker.worker import Worker, WorkerConfig

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)

app = tickr.App(sys.argv[1])


@app.task(name="probe.traced")
async def traced() -> None:
    return None


async def main(queue: str) -> None:
    with trace.get_tracer("probe").start_as_current_span("http request"):
        job_id = await app.enqueue("probe.traced", {}, queue=queue)
    await Worker(app, WorkerConfig(queues=[queue], burst=True, reaper=False)).run()
    await app.store.queues.delete(queue)
    await app.close()
    spans = [
        {
            "name": s.name,
            "trace": format(s.context.trace_id, "032x"),
            "span": format(s.context.span_id, "016x"),
            "parent": format(s.parent.span_id, "016x") if s.parent else None,
            "kind": s.kind.name,
            "attributes": dict(s.attributes or {}),
        }
        for s in exporter.get_finished_spans()
    ]
    print(json.dumps({"spans": spans, "job": job_id}))


asyncio.run(main(sys.argv[2]))
