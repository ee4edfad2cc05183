"""What every peer benchmark shares: the Redis it uses, marks written by the jobs, the four measurements, JSON out.

Runs inside each peer's own virtualenv, so it needs only the standard library and redis-py (every peer has it).
The measurements mirror `tickr bench` scenarios 1-4 (see docs/benchmarks.md):
  enqueue   N jobs one by one from one process (one call in flight), jobs/s
  drain     N queued no-op jobs, one worker process: N / (last job end - first job start), jobs/s
  latency   500 jobs at 200/s to an idle worker: handler start - client send, p50/p95/p99 ms
  delayed   200 jobs due 2 s after enqueue, 100/s: handler start - due time, p50/p99 ms
Only `drain` marks cost Redis calls (two per run); latency and delayed jobs push one value each after the
time was taken.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import redis

REDIS_URL = os.environ.get("PEER_REDIS_URL", "redis://127.0.0.1:6379/9")
N = int(os.environ.get("PEER_N", "5000"))
LAT_N, LAT_RATE = int(os.environ.get("PEER_LAT_N", "500")), 200.0
DELAY_N, DELAY_AHEAD, DELAY_RATE = int(os.environ.get("PEER_DELAY_N", "200")), 2.0, 100.0
MARK = "peerbench:"

_client: redis.Redis | None = None
_lock = threading.Lock()
_count = 0


def client() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(REDIS_URL)
    return _client


def handle(mode: str, n: int, t: float) -> None:
    """The body of every peer's no-op job: ``drain`` counts, ``latency``/``delayed`` record how late it started."""
    global _count
    if mode == "drain":
        with _lock:
            _count += 1
            count = _count
        if count == 1:
            client().set(MARK + "first", repr(time.time()))
        if count == n:
            client().set(MARK + "last", repr(time.time()))
    elif mode in ("latency", "delayed"):
        started = time.time()
        client().rpush(MARK + mode, repr((started - t) * 1000))


def clean(patterns: Sequence[str]) -> None:
    """Delete this peer's keys (and the marks) from the benchmark database; never FLUSHDB."""
    r = client()
    for pattern in [*patterns, MARK + "*"]:
        keys = list(r.scan_iter(match=pattern, count=5000))
        for i in range(0, len(keys), 1000):
            r.delete(*keys[i : i + 1000])


def pct(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))] if ordered else float("nan")


def wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


class Worker:
    """The peer's worker command as a subprocess, stopped with SIGTERM (then SIGKILL)."""

    def __init__(self, cmd: list[str]) -> None:
        env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.abspath(__file__))}
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Peer:
    """A peer's client side: ``one(mode, n, t, eta)`` sends one job (sync). Async peers override the two loops."""

    name = "?"
    settings = ""
    patterns: Sequence[str] = ()

    def worker_cmd(self) -> list[str]:
        raise NotImplementedError

    def one(self, mode: str, n: int, t: float, eta: float | None) -> None:
        raise NotImplementedError

    def enqueue_n(self, mode: str, n: int) -> None:
        """``n`` jobs one by one, one call in flight."""
        for _ in range(n):
            self.one(mode, n, 0.0, None)

    def send_paced(self, mode: str, count: int, rate: float, ahead: float = 0.0) -> None:
        """``count`` jobs at ``rate``/s; ``t`` is the send time (latency) or the due time (delayed)."""
        origin = time.perf_counter()
        for i in range(count):
            wait = origin + i / rate - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            now = time.time()
            self.one(mode, 0, now + ahead, now + ahead if ahead else None)


class AsyncPeer(Peer):
    """An asyncio peer: ``aone`` sends one job; the loops run inside one event loop."""

    async def aone(self, mode: str, n: int, t: float, eta: float | None) -> None:
        raise NotImplementedError

    async def setup(self) -> None:
        """Connect (called once, inside the loop)."""

    def run(self, coro: Any) -> Any:
        import asyncio

        if not hasattr(self, "_loop"):
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self.setup())
        return self._loop.run_until_complete(coro)

    def enqueue_n(self, mode: str, n: int) -> None:
        async def loop() -> None:
            for _ in range(n):
                await self.aone(mode, n, 0.0, None)

        self.run(loop())

    def send_paced(self, mode: str, count: int, rate: float, ahead: float = 0.0) -> None:
        import asyncio

        async def loop() -> None:
            origin = time.perf_counter()
            for i in range(count):
                wait = origin + i / rate - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
                now = time.time()
                await self.aone(mode, 0, now + ahead, now + ahead if ahead else None)

        self.run(loop())


def measure(peer: Peer) -> dict[str, Any]:
    """Run the four measurements for ``peer``."""
    result: dict[str, Any] = {"peer": peer.name, "settings": peer.settings, "n": N}
    clean(peer.patterns)
    started = time.perf_counter()
    peer.enqueue_n("enqueue", N)
    result["enqueue_per_s"] = N / (time.perf_counter() - started)
    clean(peer.patterns)
    peer.enqueue_n("drain", N)
    worker = Worker(peer.worker_cmd())
    r = client()
    try:
        if wait_for(lambda: r.exists(MARK + "last") == 1, timeout=300):
            first, last = float(r.get(MARK + "first")), float(r.get(MARK + "last"))
            result["drain_per_s"] = N / max(1e-6, last - first)
        clean([MARK + "*"])
        peer.send_paced("latency", 1, 1.0)  # warm-up: the worker is connected and idle
        wait_for(lambda: r.llen(MARK + "latency") >= 1, timeout=60)
        r.delete(MARK + "latency")
        peer.send_paced("latency", LAT_N, LAT_RATE)
        wait_for(lambda: r.llen(MARK + "latency") >= LAT_N, timeout=60)
        lat = [float(v) for v in r.lrange(MARK + "latency", 0, -1)]
        result.update(lat_p50=pct(lat, 50), lat_p95=pct(lat, 95), lat_p99=pct(lat, 99), lat_ran=len(lat))
        peer.send_paced("delayed", DELAY_N, DELAY_RATE, ahead=DELAY_AHEAD)
        wait_for(lambda: r.llen(MARK + "delayed") >= DELAY_N, timeout=DELAY_AHEAD + 60)
        late = [float(v) for v in r.lrange(MARK + "delayed", 0, -1)]
        result.update(delay_p50=pct(late, 50), delay_p99=pct(late, 99), delay_ran=len(late))
    finally:
        worker.stop()
        clean(peer.patterns)
    return result


def emit(result: dict[str, Any]) -> None:
    out = os.environ.get("PEER_OUT")
    text = json.dumps(result)
    if out:
        with open(out, "a") as fh:
            fh.write(text + "\n")
    print(text, file=sys.stderr)
