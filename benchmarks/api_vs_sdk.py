"""HTTP API against the Python SDK, back to back on one machine (issue 16 targets).

Per run, in this order: SDK single ``App.enqueue`` (N sequential, each timed), HTTP single
``POST /api/v1/jobs`` (httpx keep-alive, same payload), SDK bulk ``App.enqueue_many`` in chunks of 1,000,
HTTP ``POST /api/v1/jobs/batch`` with 1,000 jobs per request. Prints the median over ``--runs`` of each
figure and the two ratios against the targets:

- HTTP batch jobs/s >= 50% of SDK bulk jobs/s
- HTTP single p50 <= 1.5x SDK single p50

The API is a real ``tickr api`` subprocess on a free port against ``--redis-url`` (or ``--api-url``, one
already running, e.g. under py-spy). Use a private Redis, not a shared one:

    redis-server --port 6501 --save "" --appendonly no --daemonize yes
    .venv/bin/python benchmarks/api_vs_sdk.py --redis-url redis://127.0.0.1:6501/0 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from tickr.api.models import MAX_BATCH
from tickr.app import App

CHUNK = 1_000
JOB_TYPE = "noop"
SINGLE_TARGET = 1.5  # HTTP single p50 at most this times the SDK's
BULK_TARGET = 0.5  # HTTP batch jobs/s at least this share of the SDK's


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def api_server(redis_url: str, api_url: str | None) -> Iterator[str]:
    """The base URL of a ``tickr api``: ``api_url`` as given, else a subprocess started (and stopped) here."""
    if api_url:
        yield api_url.rstrip("/")
        return
    port = free_port()
    env = {**os.environ, "TICKR_REDIS_URL": redis_url, "TICKR_LOG_LEVEL": "WARNING"}
    server = subprocess.Popen([sys.executable, "-m", "tickr", "api", "--port", str(port)], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(base + "/health").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise SystemExit("tickr api did not answer /health")
        yield base
    finally:
        server.terminate()
        server.wait(10)


def percentiles(timings_ms: list[float]) -> tuple[float, float]:
    ordered = sorted(timings_ms)
    return statistics.median(ordered), ordered[max(0, int(len(ordered) * 0.99) - 1)]


async def sdk_single(app: App, n: int, queue: str) -> list[float]:
    for i in range(50):  # warm-up: connection, scripts loaded, queue registered
        await app.enqueue(JOB_TYPE, {"warm": i}, queue=queue)
    timings = []
    for i in range(n):
        start = time.perf_counter()
        await app.enqueue(JOB_TYPE, {"i": i}, queue=queue)
        timings.append((time.perf_counter() - start) * 1000)
    return timings


def http_single(client: httpx.Client, n: int, queue: str) -> list[float]:
    for i in range(50):
        client.post("/api/v1/jobs", json={"type": JOB_TYPE, "queue": queue, "payload": {"warm": i}})
    timings = []
    for i in range(n):
        start = time.perf_counter()
        response = client.post("/api/v1/jobs", json={"type": JOB_TYPE, "queue": queue, "payload": {"i": i}})
        timings.append((time.perf_counter() - start) * 1000)
        if response.status_code != 201:
            raise SystemExit(f"POST /api/v1/jobs: {response.status_code} {response.text}")
    return timings


def chunks(total: int, queue: str) -> list[list[dict[str, Any]]]:
    return [
        [{"type": JOB_TYPE, "queue": queue, "payload": {"i": i}} for i in range(start, min(start + CHUNK, total))]
        for start in range(0, total, CHUNK)
    ]


async def sdk_bulk(app: App, total: int, queue: str) -> float:
    await app.enqueue_many(chunks(CHUNK, queue)[0])  # warm-up
    batches = chunks(total, queue)
    start = time.perf_counter()
    for batch in batches:
        await app.enqueue_many(batch)
    return total / (time.perf_counter() - start)


def http_bulk(client: httpx.Client, total: int, queue: str) -> float:
    client.post("/api/v1/jobs/batch", json={"jobs": chunks(CHUNK, queue)[0]})  # warm-up
    batches = chunks(total, queue)
    start = time.perf_counter()
    for batch in batches:
        response = client.post("/api/v1/jobs/batch", json={"jobs": batch})
        if response.status_code != 201:
            raise SystemExit(f"POST /api/v1/jobs/batch: {response.status_code} {response.text[:500]}")
    return total / (time.perf_counter() - start)


def new_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed, as ``tickr api`` uses it: both sides run on the same kind of loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis-url", default=os.environ.get("TICKR_REDIS_URL", "redis://127.0.0.1:6501/0"))
    parser.add_argument("--api-url", help="an API already running against --redis-url (default: start one)")
    parser.add_argument("-n", type=int, default=1000, help="single enqueues per run and side")
    parser.add_argument("--bulk", type=int, default=20_000, help="jobs per run and side, in chunks of 1,000")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", choices=("all", "single", "bulk"), default="all")
    args = parser.parse_args()
    assert CHUNK <= MAX_BATCH, f"the API takes at most {MAX_BATCH} jobs per batch"
    os.environ["TICKR_REDIS_URL"] = args.redis_url
    loop = new_loop()
    app = App(redis_url=args.redis_url)
    figures: dict[str, list[float]] = {}

    def record(name: str, value: float) -> None:
        figures.setdefault(name, []).append(value)

    try:
        with api_server(args.redis_url, args.api_url) as base, httpx.Client(base_url=base, timeout=60) as client:
            for run in range(1, args.runs + 1):
                tag = uuid.uuid4().hex[:8]
                line = [f"run {run}:"]
                if args.only in ("all", "single"):
                    sdk_p50, sdk_p99 = percentiles(loop.run_until_complete(sdk_single(app, args.n, f"b-sdk1-{tag}")))
                    api_p50, api_p99 = percentiles(http_single(client, args.n, f"b-api1-{tag}"))
                    record("sdk_p50", sdk_p50)
                    record("sdk_p99", sdk_p99)
                    record("api_p50", api_p50)
                    record("api_p99", api_p99)
                    line.append(
                        f"single p50/p99 sdk {sdk_p50:.3f}/{sdk_p99:.3f} ms, http {api_p50:.3f}/{api_p99:.3f} ms;"
                    )
                if args.only in ("all", "bulk"):
                    sdk_rate = loop.run_until_complete(sdk_bulk(app, args.bulk, f"b-sdkN-{tag}"))
                    api_rate = http_bulk(client, args.bulk, f"b-apiN-{tag}")
                    record("sdk_rate", sdk_rate)
                    record("api_rate", api_rate)
                    line.append(f"bulk sdk {sdk_rate:,.0f} jobs/s, http {api_rate:,.0f} jobs/s")
                print(" ".join(line), flush=True)
    finally:
        loop.run_until_complete(app.close())
        loop.close()

    med = {name: statistics.median(values) for name, values in figures.items()}
    print(f"median of {args.runs} runs (load average now {os.getloadavg()[0]:.2f}):")
    if "sdk_p50" in med:
        ratio = med["api_p50"] / med["sdk_p50"]
        verdict = "met" if ratio <= SINGLE_TARGET else "MISSED"
        print(
            f"  single: sdk p50 {med['sdk_p50']:.3f} ms p99 {med['sdk_p99']:.3f} ms | "
            f"http p50 {med['api_p50']:.3f} ms p99 {med['api_p99']:.3f} ms"
        )
        print(f"  single ratio http/sdk p50 = {ratio:.2f}x (target <= {SINGLE_TARGET}x): {verdict}")
    if "sdk_rate" in med:
        share = med["api_rate"] / med["sdk_rate"]
        verdict = "met" if share >= BULK_TARGET else "MISSED"
        print(f"  bulk: sdk {med['sdk_rate']:,.0f} jobs/s | http batch {med['api_rate']:,.0f} jobs/s")
        print(f"  bulk ratio http/sdk = {share:.0%} (target >= {BULK_TARGET:.0%}): {verdict}")


if __name__ == "__main__":
    main()
