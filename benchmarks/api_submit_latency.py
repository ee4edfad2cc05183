"""Submit latency of ``POST /api/v1/jobs``: p50/p99 over N sequential requests to a real ``tickr api``.

.venv/bin/python benchmarks/api_submit_latency.py --redis-url redis://127.0.0.1:6379/0 -n 1000 --runs 3
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def one_run(base: str, n: int, queue: str) -> list[float]:
    timings = []
    with httpx.Client(base_url=base, timeout=10) as client:
        for i in range(50):  # warm-up: connections, first script loads
            client.post("/api/v1/jobs", json={"type": "noop", "queue": queue, "payload": {"warm": i}})
        for i in range(n):
            start = time.perf_counter()
            response = client.post("/api/v1/jobs", json={"type": "noop", "queue": queue, "payload": {"i": i}})
            timings.append((time.perf_counter() - start) * 1000)
            assert response.status_code == 201, response.text
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--redis-url", default=os.environ.get("TICKR_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("-n", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    port = free_port()
    env = {**os.environ, "TICKR_REDIS_URL": args.redis_url, "TICKR_LOG_LEVEL": "WARNING"}
    server = subprocess.Popen([sys.executable, "-m", "tickr", "api", "--port", str(port)], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(base + "/health").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        p50s, p99s = [], []
        for run in range(args.runs):
            queue = f"bench-api-{uuid.uuid4().hex[:8]}"
            timings = sorted(one_run(base, args.n, queue))
            p50, p99 = statistics.median(timings), timings[int(len(timings) * 0.99) - 1]
            p50s.append(p50)
            p99s.append(p99)
            print(f"run {run + 1}: n={args.n} p50={p50:.2f} ms p99={p99:.2f} ms")
        print(f"median of {args.runs} runs: p50={statistics.median(p50s):.2f} ms p99={statistics.median(p99s):.2f} ms")
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
