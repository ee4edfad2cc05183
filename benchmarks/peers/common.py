"""What every Python peer benchmark shares: the Redis it uses, the job body, the measurements, JSON out.

Runs inside each peer's own virtualenv (tickr: the project's), so it needs only the standard library and redis-py.
Measurements (N = PEER_N; the first four are medians of PEER_RUNS runs, the others run once):
  enqueue      N jobs one by one from one process (one call in flight), jobs/s
  bulk         N jobs through the peer's own bulk API in chunks of 1,000, jobs/s (null: the peer has none)
  drain        N queued no-op jobs, one worker process: N / (last job start - first job start), jobs/s; the job
               counts in memory and writes two marks per run. Redis CPU and commands per job are taken over this
               run (see ``redis_usage``).
  drain_incr   the same with one Redis INCR per job in the job body
  latency      PEER_LAT_N jobs at 200/s to an idle worker: handler start - client send, p50/p95/p99 ms
  delayed      PEER_DELAY_N jobs due 2 s after enqueue, 100/s: handler start - due time, p50/p99 ms
  kill9        one job that records its start and sleeps 120 s; once it has started, SIGKILL the worker's process
               group and start a fresh worker at once: seconds from the kill to the job's second start (null when
               it has not started again within 90 s)
Latency, delayed and kill9 jobs push one value each after the time was taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

import redis

REDIS_URL = os.environ.get("PEER_REDIS_URL", "redis://127.0.0.1:6390/0")
N = int(os.environ.get("PEER_N", "10000"))
RUNS = int(os.environ.get("PEER_RUNS", "3"))
LAT_N, LAT_RATE = int(os.environ.get("PEER_LAT_N", "500")), 200.0
DELAY_N, DELAY_AHEAD, DELAY_RATE = int(os.environ.get("PEER_DELAY_N", "200")), 2.0, 100.0
CHUNK = 1000
KILL_SLEEP, KILL_CAP = 120.0, 90.0
DRAIN_TIMEOUT = 180.0
POLL = 0.05  # the harness polls its marks this often while a drain is measured
SETTLE = 0.2  # then waits this long, so the jobs still in flight are acknowledged, before reading Redis usage
MARK = "peerbench:"
RESULT_KEYS = (
    "peer",
    "settings",
    "n",
    "enqueue_per_s",
    "bulk_per_s",
    "drain_per_s",
    "drain_incr_per_s",
    "redis_cpu_us_per_job",
    "redis_cmds_per_job",
    "lat_p50",
    "lat_p95",
    "lat_p99",
    "delay_p50",
    "delay_p99",
    "kill9_rerun_s",
    "versions",
)

_client: redis.Redis | None = None
_aclient: Any = None
_lock = threading.Lock()
_count = 0


def client() -> redis.Redis:
    """The process's synchronous client of the benchmark Redis."""
    global _client
    if _client is None:
        _client = redis.Redis.from_url(REDIS_URL)
    return _client


def aclient() -> Any:
    """The process's asyncio client (for async job bodies: one per worker event loop)."""
    global _aclient
    if _aclient is None:
        import redis.asyncio

        _aclient = redis.asyncio.Redis.from_url(REDIS_URL)
    return _aclient


def log(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


# -- the job body ---------------------------------------------------------------------------------------------------


def _tick(n: int) -> None:
    """Count one drain job in memory; mark the first start and the ``n``-th start."""
    global _count
    with _lock:
        _count += 1
        count = _count
    if count == 1:
        client().set(MARK + "first", repr(time.time()))
    if count == n:
        client().set(MARK + "last", repr(time.time()))


def handle(mode: str, n: int, t: float) -> None:
    """The body of every sync peer's job. ``enqueue``/``bulk`` jobs never run (they are deleted unrun)."""
    if mode == "drain":
        _tick(n)
    elif mode == "incr":
        client().incr(MARK + "count")
        _tick(n)
    elif mode in ("latency", "delayed"):
        started = time.time()
        client().rpush(MARK + mode, repr((started - t) * 1000))
    elif mode == "kill9":
        client().rpush(MARK + "kill9", repr(time.time()))
        time.sleep(KILL_SLEEP)


async def ahandle(mode: str, n: int, t: float) -> None:
    """The body of every async peer's job: as ``handle``, but the per-job INCR and the sleep do not block the loop."""
    if mode == "incr":
        await aclient().incr(MARK + "count")
        _tick(n)
    elif mode == "kill9":
        await aclient().rpush(MARK + "kill9", repr(time.time()))
        await asyncio.sleep(KILL_SLEEP)
    else:
        handle(mode, n, t)


# -- helpers --------------------------------------------------------------------------------------------------------


def clean(patterns: Sequence[str]) -> None:
    """Delete this peer's keys (and the marks) from the benchmark database; never FLUSHDB."""
    r = client()
    for pattern in [*patterns, MARK + "*"]:
        keys = list(r.scan_iter(match=pattern, count=5000))
        for i in range(0, len(keys), 1000):
            r.delete(*keys[i : i + 1000])


def pct(values: Sequence[float], p: float) -> float | None:
    """The ``p``-th percentile (nearest rank); None for no values."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))] if ordered else None


def wait_for(predicate: Callable[[], bool], timeout: float, every: float = 0.02) -> tuple[bool, int]:
    """Poll ``predicate`` every ``every`` s until true or ``timeout``: (became true, number of polls)."""
    deadline, polls = time.monotonic() + timeout, 0
    while time.monotonic() < deadline:
        polls += 1
        if predicate():
            return True, polls
        time.sleep(every)
    return False, polls


def median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def versions(*dists: str) -> dict[str, str]:
    """Installed versions of ``dists`` (and redis-py, Python)."""
    found = {"python": sys.version.split()[0]}
    for dist in (*dists, "redis"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "?"
    return found


class Worker:
    """The peer's worker command as a subprocess in its own process group (so forked children go with it)."""

    def __init__(self, cmd: list[str], env: dict[str, str] | None = None) -> None:
        full_env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.abspath(__file__)), **(env or {})}
        out = open(os.environ.get("PEER_WORKER_LOG", os.devnull), "ab")  # noqa: SIM115 - kept for the child
        self.proc = subprocess.Popen(cmd, env=full_env, stdout=out, stderr=out, start_new_session=True)
        out.close()

    def _signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def stop(self) -> None:
        """SIGTERM to the group, then SIGKILL after 15 s."""
        if self.proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        self._signal(signal.SIGKILL)  # children left behind by a parent that exited

    def kill(self) -> None:
        """SIGKILL to the whole group at once."""
        self._signal(signal.SIGKILL)
        self.proc.wait()


def redis_usage() -> tuple[float, int]:
    """(used CPU seconds, commands run) of the Redis server so far.

    CPU is ``used_cpu_sys + used_cpu_user`` of ``INFO cpu``; commands are the sum of ``calls`` over every entry of
    ``INFO commandstats`` (commands run by Lua scripts are counted there too, beside the EVALSHA itself).
    """
    r = client()
    cpu = r.info("cpu")
    calls = sum(int(stats["calls"]) for stats in r.info("commandstats").values())
    return float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]), calls


# -- peers ----------------------------------------------------------------------------------------------------------


class Peer:
    """A peer's client side: ``one(mode, n, t, eta)`` sends one job (sync). Async peers override the loops."""

    name = "?"
    settings = ""
    patterns: Sequence[str] = ()
    dists: Sequence[str] = ()
    has_bulk = False

    def worker_cmd(self) -> list[str]:
        raise NotImplementedError

    def worker_env(self) -> dict[str, str]:
        return {}

    def reset(self) -> None:
        """Delete the peer's keys and the marks (before and after each measurement)."""
        clean(self.patterns)

    def one(self, mode: str, n: int, t: float, eta: float | None) -> None:
        raise NotImplementedError

    def bulk(self, mode: str, n: int, count: int) -> None:
        """``count`` jobs in one call of the peer's bulk API (only when ``has_bulk``)."""
        raise NotImplementedError

    def before_drain(self) -> None:
        """Called with the drain jobs queued, before Redis usage is read and the worker starts."""

    def after_drain(self) -> None:
        """Called once the drain is measured and the worker is stopped."""

    def enqueue_n(self, mode: str, n: int) -> None:
        """``n`` jobs one by one, one call in flight."""
        for _ in range(n):
            self.one(mode, n, 0.0, None)

    def bulk_n(self, mode: str, n: int) -> None:
        """``n`` jobs in chunks of ``CHUNK``."""
        for start in range(0, n, CHUNK):
            self.bulk(mode, n, min(CHUNK, n - start))

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
    """An asyncio peer: ``aone`` (and ``abulk``) send jobs; the loops run inside one event loop."""

    async def aone(self, mode: str, n: int, t: float, eta: float | None) -> None:
        raise NotImplementedError

    async def abulk(self, mode: str, n: int, count: int) -> None:
        raise NotImplementedError

    async def setup(self) -> None:
        """Connect (called once, inside the loop)."""

    def run(self, coro: Any) -> Any:
        if not hasattr(self, "_loop"):
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self.setup())
        return self._loop.run_until_complete(coro)

    def enqueue_n(self, mode: str, n: int) -> None:
        async def loop() -> None:
            for _ in range(n):
                await self.aone(mode, n, 0.0, None)

        self.run(loop())

    def bulk_n(self, mode: str, n: int) -> None:
        async def loop() -> None:
            for start in range(0, n, CHUNK):
                await self.abulk(mode, n, min(CHUNK, n - start))

        self.run(loop())

    def send_paced(self, mode: str, count: int, rate: float, ahead: float = 0.0) -> None:
        async def loop() -> None:
            origin = time.perf_counter()
            for i in range(count):
                wait = origin + i / rate - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
                now = time.time()
                await self.aone(mode, 0, now + ahead, now + ahead if ahead else None)

        self.run(loop())


# -- measurements ---------------------------------------------------------------------------------------------------


def timed(action: Callable[[], None], n: int) -> float:
    """``n`` / seconds taken by ``action``."""
    started = time.perf_counter()
    action()
    return n / (time.perf_counter() - started)


def enqueue_rates(peer: Peer) -> dict[str, float | None]:
    """One-by-one and bulk enqueue rates of ``N`` jobs each (the jobs are deleted unrun)."""
    peer.reset()
    rates: dict[str, float | None] = {"enqueue_per_s": timed(lambda: peer.enqueue_n("enqueue", N), N)}
    peer.reset()
    rates["bulk_per_s"] = timed(lambda: peer.bulk_n("bulk", N), N) if peer.has_bulk else None
    peer.reset()
    return rates


def drain(peer: Peer, mode: str) -> dict[str, float | None]:
    """Drain ``N`` queued jobs of ``mode`` with a fresh worker: jobs/s, and Redis CPU µs and commands per job.

    Redis usage is read right before the worker starts and ``SETTLE`` s after the last job's mark appears, divided
    by N; the only commands taken off are the harness's own: its polls for the mark (every 50 ms) and the
    ``INFO commandstats`` of the first reading. Everything else (the worker's start-up, the two marks, any other
    process of the peer such as tickr's history sink) is counted.
    """
    peer.reset()
    peer.enqueue_n(mode, N)
    peer.before_drain()
    r = client()
    cpu0, calls0 = redis_usage()
    worker = Worker(peer.worker_cmd(), peer.worker_env())
    try:
        done, polls = wait_for(lambda: r.exists(MARK + "last") == 1, timeout=DRAIN_TIMEOUT, every=POLL)
        time.sleep(SETTLE)
        cpu1, calls1 = redis_usage()
    finally:
        worker.stop()
        peer.after_drain()
    if not done:
        log(f"{mode}: the last job did not run within {DRAIN_TIMEOUT:.0f} s")
        return {}
    first, last = float(r.get(MARK + "first")), float(r.get(MARK + "last"))
    rate = N / max(1e-6, last - first)
    peer.reset()
    if mode == "incr":
        return {"drain_incr_per_s": rate}
    return {
        "drain_per_s": rate,
        "redis_cpu_us_per_job": (cpu1 - cpu0) * 1e6 / N,
        "redis_cmds_per_job": (calls1 - calls0 - polls - 1) / N,
    }


def latencies(peer: Peer) -> dict[str, float | None]:
    """Enqueue-to-start latency at 200/s and delayed-job lateness, with one idle worker."""
    peer.reset()
    r = client()
    worker = Worker(peer.worker_cmd(), peer.worker_env())
    try:
        peer.send_paced("latency", 1, 1.0)  # warm-up: the worker is connected and idle
        wait_for(lambda: r.llen(MARK + "latency") >= 1, timeout=60)
        r.delete(MARK + "latency")
        peer.send_paced("latency", LAT_N, LAT_RATE)
        wait_for(lambda: r.llen(MARK + "latency") >= LAT_N, timeout=60)
        lat = [float(v) for v in r.lrange(MARK + "latency", 0, -1)]
        peer.send_paced("delayed", DELAY_N, DELAY_RATE, ahead=DELAY_AHEAD)
        wait_for(lambda: r.llen(MARK + "delayed") >= DELAY_N, timeout=DELAY_AHEAD + 60)
        late = [float(v) for v in r.lrange(MARK + "delayed", 0, -1)]
    finally:
        worker.stop()
        peer.reset()
    log(f"latency: {len(lat)}/{LAT_N} ran; delayed: {len(late)}/{DELAY_N} ran")
    result = {"lat_p50": pct(lat, 50), "lat_p95": pct(lat, 95), "lat_p99": pct(lat, 99)}
    if len(lat) < LAT_N:
        result = dict.fromkeys(result)
    delayed = {"delay_p50": pct(late, 50), "delay_p99": pct(late, 99)}
    return result | (delayed if len(late) >= DELAY_N else dict.fromkeys(delayed))


def kill9(peer: Peer) -> float | None:
    """Seconds from SIGKILL of the worker running a job to that job's second start (None: not within 90 s)."""
    peer.reset()
    r = client()
    first = Worker(peer.worker_cmd(), peer.worker_env())
    second: Worker | None = None
    try:
        peer.enqueue_n("kill9", 1)
        if not wait_for(lambda: r.llen(MARK + "kill9") >= 1, timeout=60)[0]:
            log("kill9: the job did not start within 60 s")
            return None
        killed = time.time()
        first.kill()
        second = Worker(peer.worker_cmd(), peer.worker_env())
        if not wait_for(lambda: r.llen(MARK + "kill9") >= 2, timeout=KILL_CAP, every=0.1)[0]:
            log(f"kill9: the job did not start again within {KILL_CAP:.0f} s")
            return None
        return float(r.lindex(MARK + "kill9", 1)) - killed
    finally:
        first.kill()
        if second is not None:
            second.kill()
        peer.reset()


def measure(peer: Peer) -> dict[str, Any]:
    """Every measurement for ``peer``; a result with exactly ``RESULT_KEYS``."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # `timeout`: stop the workers on the way out
    runs: list[dict[str, float | None]] = []
    for run in range(RUNS):
        result = enqueue_rates(peer) | drain(peer, "drain") | drain(peer, "incr")
        log(f"run {run + 1}/{RUNS}: " + ", ".join(f"{k} {v:,.1f}" for k, v in result.items() if v is not None))
        runs.append(result)
    keys = {key for run in runs for key in run}
    result = {key: median([run.get(key) for run in runs]) for key in keys}
    result |= latencies(peer)
    result["kill9_rerun_s"] = kill9(peer)
    meta = {"peer": peer.name, "settings": peer.settings, "n": N, "versions": versions(*peer.dists)}
    return {key: (meta | result).get(key) for key in RESULT_KEYS}


def emit(result: dict[str, Any]) -> None:
    """Append ``result`` as one JSON line to PEER_OUT (and print it)."""
    out = os.environ.get("PEER_OUT")
    text = json.dumps(result)
    if out:
        with open(out, "a") as fh:
            fh.write(text + "\n")
    print(text, file=sys.stderr)
