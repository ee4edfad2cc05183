"""The benchmark scenarios: enqueue rate, drain throughput, enqueue-to-start latency, delayed lateness, memory.

Each scenario uses a queue of its own (``bench-<uuid>``) and deletes its keys afterwards.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from tickr.app import App
from tickr.config import Settings
from tickr.loadgen.probe import APP_SPEC, PROBE
from tickr.loadgen.target import WorkerProcess, new_queue, private_valkey, running

CHUNK = 1_000


@dataclass
class Outcome:
    """One run of a scenario: numeric metrics (medians are taken over runs) and descriptive notes."""

    metrics: dict[str, float] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile (nearest rank) of ``values``; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(pct / 100 * len(ordered)) - 1))
    return ordered[rank]


async def fill(app: App, queue: str, n: int, job_type: str = "noop") -> list[str]:
    """Enqueue ``n`` jobs of ``job_type`` with an empty payload, in batches; returns their ids."""
    ids: list[str] = []
    for start in range(0, n, CHUNK):
        batch = [{"type": job_type, "payload": {}, "queue": queue} for _ in range(min(CHUNK, n - start))]
        ids += await app.enqueue_many(batch)
    return ids


async def read_jobs(app: App, queue: str, ids: Sequence[str], fields: Sequence[str]) -> list[dict[str, str]]:
    """``fields`` of every job hash in ``ids`` (missing ones as "")."""
    return await app.store.jobs.fields(queue, ids, fields)


async def wait_finished(app: App, queue: str, count: int, within: float) -> int:
    """Wait until ``count`` jobs of ``queue`` succeeded or died (the queue's counters); returns how many did."""
    deadline = time.monotonic() + within
    done = 0
    while time.monotonic() < deadline:
        counters = await app.store.queues.counters(queue)
        done = counters["succeeded"] + counters["dead"]
        if done >= count:
            return done
        await asyncio.sleep(0.02)
    return done


async def with_app(url: str, body: Callable[[App, str], Awaitable[Outcome]]) -> Outcome:
    """Run ``body(app, queue)`` with a fresh queue, then delete the queue's keys and close the app."""
    app = App(settings=Settings(redis_url=url))
    queue = new_queue()
    try:
        return await body(app, queue)
    finally:
        await app.store.queues.delete(queue)
        await app.close()


async def enqueue_rate(url: str, n: int, callers: int = 32) -> Outcome:
    """``App.enqueue`` one by one (one call in flight, then ``callers`` at once) and ``enqueue_many`` in chunks."""

    async def body(app: App, queue: str) -> Outcome:
        await app.enqueue("noop", {}, queue=queue)  # connect and register the queue outside the timing
        started = time.perf_counter()
        for _ in range(n):
            await app.enqueue("noop", {}, queue=queue)
        one_by_one = n / (time.perf_counter() - started)

        async def caller(count: int) -> None:
            for _ in range(count):
                await app.enqueue("noop", {}, queue=queue)

        started = time.perf_counter()
        await asyncio.gather(*(caller(n // callers + (i < n % callers)) for i in range(callers)))
        concurrent = n / (time.perf_counter() - started)
        started = time.perf_counter()
        await fill(app, queue, n)
        batched = n / (time.perf_counter() - started)
        return Outcome(
            {"one_by_one_per_s": one_by_one, "concurrent_per_s": concurrent, "batched_per_s": batched},
            {"callers": str(callers), "chunk": str(CHUNK)},
        )

    return await with_app(url, body)


async def drain(url: str, n: int, processes: int = 1, limit_s: float = 600.0) -> Outcome:
    """``n`` queued no-op jobs drained by ``tickr worker --burst`` (default concurrency) as a subprocess.

    ``jobs_per_s``: n / (last ``finished_at`` - first ``started_at``), both from the job hashes (Redis
    clock, ms). ``process_jobs_per_s``: n / wall time of the burst process, start-up included.
    ``redis_cpu_us_per_job`` / ``redis_commands_per_job``: the server's CPU time and commands (those inside
    scripts included) while the worker process ran, per job.
    """

    async def body(app: App, queue: str) -> Outcome:
        ids = await fill(app, queue, n)
        cpu_before, calls_before = await app.store.diagnostics.work()
        worker = WorkerProcess(url, queue, burst=True, processes=processes).start()
        code = await asyncio.to_thread(worker.wait, limit_s)
        cpu_after, calls_after = await app.store.diagnostics.work()
        rows = await read_jobs(app, queue, ids, ["status", "started_at", "finished_at"])
        succeeded = sum(1 for row in rows if row["status"] == "succeeded")
        starts = [int(row["started_at"]) for row in rows if row["started_at"]]
        ends = [int(row["finished_at"]) for row in rows if row["finished_at"]]
        span_ms = max(1, max(ends) - min(starts)) if starts and ends else 0
        return Outcome(
            {
                "jobs_per_s": n / (span_ms / 1000) if span_ms else 0.0,
                "process_jobs_per_s": n / (worker.ended_at - worker.started_at),
                "succeeded": float(succeeded),
                # The whole server's work while the worker ran (its start-up and the one INFO reading
                # included): on a shared Redis, other clients' work counts too.
                "redis_cpu_us_per_job": (cpu_after - cpu_before) * 1e6 / n,
                "redis_commands_per_job": (calls_after - calls_before - 1) / n,
            },
            {"processes": str(processes), "exit_code": str(code)},
        )

    return await with_app(url, body)


async def _paced(count: int, rate: float, send: Callable[[int], Awaitable[None]]) -> None:
    """Call ``send(i)`` ``count`` times at ``rate`` per second (open loop: a late call does not shift the rest)."""
    origin = time.perf_counter()
    for i in range(count):
        wait = origin + i / rate - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        await send(i)


async def _probe_worker_ready(app: App, queue: str) -> None:
    """Run one probe job through the worker, so it is connected, warm and waiting."""
    await app.enqueue(PROBE, {}, queue=queue)
    if await wait_finished(app, queue, 1, within=60) < 1:
        raise RuntimeError("the benchmark worker did not start")


def _ms_stats(prefix: str, values: Sequence[float]) -> dict[str, float]:
    return {
        f"{prefix}p50_ms": percentile(values, 50),
        f"{prefix}p95_ms": percentile(values, 95),
        f"{prefix}p99_ms": percentile(values, 99),
        f"{prefix}max_ms": max(values, default=0.0),
    }


async def latency(url: str, n: int = 500, rate: float = 200.0) -> Outcome:
    """Enqueue-to-start at a paced rate, one idle worker waiting.

    Start = the probe handler's ``time.time()``; enqueue = the client's ``time.time()`` just before
    ``App.enqueue`` (same host, µs resolution). ``server_p99_ms``: ``started_at - created_at`` (Redis, ms).
    """

    async def body(app: App, queue: str) -> Outcome:
        worker = WorkerProcess(url, queue, app_spec=APP_SPEC)
        sent: list[float] = [0.0] * n
        ids: list[str] = [""] * n

        async def send(i: int) -> None:
            sent[i] = time.time()
            ids[i] = await app.enqueue(PROBE, {}, queue=queue)

        with running([worker]):
            await _probe_worker_ready(app, queue)
            await _paced(n, rate, send)
            finished = await wait_finished(app, queue, n + 1, within=60)
        rows = await read_jobs(app, queue, ids, ["result", "created_at", "started_at"])
        waits = [(orjson.loads(row["result"])["t"] - sent[i]) * 1000 for i, row in enumerate(rows) if row["result"]]
        server = [int(r["started_at"]) - int(r["created_at"]) for r in rows if r["started_at"] and r["created_at"]]
        metrics = _ms_stats("", waits)
        metrics["server_p99_ms"] = percentile(server, 99)
        metrics["ran"] = float(len(waits))
        return Outcome(metrics, {"rate": f"{rate:g}/s", "jobs": str(n), "finished": str(finished - 1)})

    return await with_app(url, body)


async def delayed(url: str, n: int = 200, ahead: float = 2.0, rate: float = 100.0) -> Outcome:
    """Lateness of delayed jobs: each enqueued ``ahead`` seconds before its due time, ``rate`` per second.

    Due times stay in Redis (the ``scheduled`` zset); lateness = handler start - due time (µs resolution).
    """

    async def body(app: App, queue: str) -> Outcome:
        worker = WorkerProcess(url, queue, app_spec=APP_SPEC)
        due: list[float] = [0.0] * n
        ids: list[str] = [""] * n

        async def send(i: int) -> None:
            run_at = time.time() + ahead
            due[i] = int(run_at * 1000) / 1000  # the due time the store keeps (ms), as App computes it
            ids[i] = await app.enqueue(PROBE, {}, queue=queue, run_at=run_at)

        with running([worker]):
            await _probe_worker_ready(app, queue)
            await _paced(n, rate, send)
            await wait_finished(app, queue, n + 1, within=ahead + 60)
        rows = await read_jobs(app, queue, ids, ["result"])
        late = [(orjson.loads(row["result"])["t"] - due[i]) * 1000 for i, row in enumerate(rows) if row["result"]]
        metrics = _ms_stats("", late)
        metrics["early"] = float(sum(1 for value in late if value < 0))
        metrics["ran"] = float(len(late))
        return Outcome(metrics, {"ahead": f"{ahead:g}s", "rate": f"{rate:g}/s", "jobs": str(n)})

    return await with_app(url, body)


async def memory(n: int = 100_000) -> Outcome:
    """Redis memory per queued no-op job: ``used_memory`` delta / n on a private embedded Valkey."""
    with private_valkey() as url:

        async def body(app: App, queue: str) -> Outcome:
            ids = await fill(app, queue, 1)  # the queue's own keys (stats, marker, events) exist first
            before = await app.store.diagnostics.used_memory()
            ids += await fill(app, queue, n)
            after = await app.store.diagnostics.used_memory()
            footprint = await app.store.diagnostics.footprint(queue, ids[-1])
            return Outcome(
                {
                    "bytes_per_job": (after - before) / n,
                    "job_hash_bytes": float(footprint["job_hash_bytes"]),
                    "events_stream_bytes": float(footprint["events_stream_bytes"]),
                    "events_len": float(footprint["events_len"]),
                },
                {
                    "job_encoding": str(footprint["job_encoding"]),
                    "events_maxlen": str(app.settings.events_maxlen),
                    "jobs": str(n),
                },
            )

        return await with_app(url, body)


async def scale(url: str, small: int, large: int) -> Outcome:
    """Drain throughput with ``small`` and with ``large`` jobs queued; ``ratio`` = large / small."""
    low = (await drain(url, small)).metrics["jobs_per_s"]
    high = (await drain(url, large)).metrics["jobs_per_s"]
    return Outcome(
        {"small_jobs_per_s": low, "large_jobs_per_s": high, "ratio": high / low if low else 0.0},
        {"small": f"{small:,} jobs", "large": f"{large:,} jobs"},
    )


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else 0.0


def summary(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """Medians per metric over runs, the values of each run, and the notes of the last run."""
    names = list(outcomes[0].metrics) if outcomes else []
    return {
        "metrics": {name: median([o.metrics[name] for o in outcomes]) for name in names},
        "runs": {name: [o.metrics[name] for o in outcomes] for name in names},
        "notes": outcomes[-1].notes if outcomes else {},
    }
