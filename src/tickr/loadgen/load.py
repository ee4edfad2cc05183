"""``tickr load``: submit a mix of job types and priorities (via Redis or the HTTP API), run or watch workers, report.

Flaky and failing jobs get a short backoff (10 ms base, 100 ms cap) so a run ends in seconds, not minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from tickr.app import App
from tickr.config import Settings
from tickr.core.errors import TickrError
from tickr.loadgen.scenarios import percentile, read_jobs
from tickr.loadgen.target import WorkerProcess, running, serving
from tickr.store.workers import WorkerInfo

SHORT_BACKOFF = {"base": 0.01, "max": 0.1, "jitter": 1.0}
DEFAULT_QUEUE = "default"  # the running system's queue: what `tickr up` and `tickr worker` serve by default
NO_WORKER_SECONDS = 1.5  # no live worker on the queue for this long: say so and stop (before or during a run)
LOCAL_START_SECONDS = 30.0  # --workers N: how long the local worker processes may take to register
POLL_SECONDS = 0.02
MIX_TYPES = ("noop", "flaky", "fail", "sleep")


def parse_mix(text: str) -> dict[str, int]:
    """``critical=1,high=2,default=5,low=2`` into weights; unknown priorities and bad weights raise ValueError."""
    mix: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, weight = part.partition("=")
        if name not in ("critical", "high", "default", "low") or not weight.strip().isdigit():
            raise ValueError(f"bad priority mix entry {part!r}: expected e.g. critical=1,high=2,default=5,low=2")
        mix[name] = int(weight)
    if not mix or sum(mix.values()) <= 0:
        raise ValueError("the priority mix needs at least one positive weight")
    return mix


@dataclass
class LoadConfig:
    """One load run. Percentages pick each job's type (``pct_noop`` defaults to what the others leave of 100);
    ``priority_mix`` weights pick its priority. The jobs go to ``queue`` (the running system's ``default``),
    run by live workers, or by ``workers`` local ``tickr worker`` processes started for the run."""

    redis_url: str
    n: int = 10_000
    submitters: int = 4
    pct_noop: float | None = None
    pct_flaky: float = 0.0
    pct_fail: float = 0.0
    pct_sleep: float = 0.0
    sleep_ms: int = 10
    flaky_attempts: int = 1
    priority_mix: dict[str, int] = field(default_factory=lambda: {"default": 1})
    via: str = "redis"
    api_url: str = "http://127.0.0.1:8080"
    api_token: str | None = None
    queue: str = DEFAULT_QUEUE
    workers: int = 0
    concurrency: int | None = None
    batch: int = 500
    timeout: float = 600.0
    seed: int | None = None
    transport: httpx.AsyncBaseTransport | None = None  # tests: an in-process ASGI app instead of a server

    def __post_init__(self) -> None:
        others = self.pct_flaky + self.pct_fail + self.pct_sleep
        if self.pct_noop is None:
            if others > 100:
                raise ValueError("--pct-flaky, --pct-fail and --pct-sleep add up to more than 100")
            self.pct_noop = 100.0 - others
        weights = (self.pct_noop, self.pct_flaky, self.pct_fail, self.pct_sleep)
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError("the --pct-* values must be >= 0 and not all 0")
        if self.via not in ("redis", "http"):
            raise ValueError("--via is redis or http")


def plan(config: LoadConfig, queue: str) -> list[dict[str, Any]]:
    """The ``n`` job specs of a run (type, payload, queue, priority, max_retries, backoff)."""
    rng = random.Random(config.seed)
    types = rng.choices(
        MIX_TYPES, weights=(config.pct_noop or 0.0, config.pct_flaky, config.pct_fail, config.pct_sleep), k=config.n
    )
    names, weights = zip(*config.priority_mix.items(), strict=True)
    priorities = rng.choices(names, weights=weights, k=config.n)
    specs: list[dict[str, Any]] = []
    for job_type, priority in zip(types, priorities, strict=True):
        spec: dict[str, Any] = {"type": job_type, "payload": {}, "queue": queue, "priority": priority}
        if job_type == "sleep":
            spec["payload"] = {"ms": config.sleep_ms}
        elif job_type == "flaky":
            spec.update(payload={"fail_times": config.flaky_attempts}, max_retries=config.flaky_attempts)
            spec["backoff"] = SHORT_BACKOFF
        elif job_type == "fail":
            spec.update(max_retries=1, backoff=SHORT_BACKOFF)
        specs.append(spec)
    return specs


async def _submit_redis(app: App, specs: Sequence[dict[str, Any]], batch: int) -> list[str]:
    ids: list[str] = []
    for start in range(0, len(specs), batch):
        ids += await app.enqueue_many(specs[start : start + batch])
    return ids


async def _submit_http(client: httpx.AsyncClient, specs: Sequence[dict[str, Any]], batch: int) -> list[str]:
    ids: list[str] = []
    for start in range(0, len(specs), batch):
        chunk = specs[start : start + batch]
        if len(chunk) == 1:
            response = await client.post("/api/v1/jobs", json=chunk[0])
            response.raise_for_status()
            ids.append(response.json()["id"])
            continue
        response = await client.post("/api/v1/jobs/batch", json={"jobs": list(chunk)})
        response.raise_for_status()
        ids += [job["id"] for job in response.json()["jobs"]]
    return ids


async def submit(
    config: LoadConfig,
    app: App,
    specs: list[dict[str, Any]],
    on_sent: Callable[[int], None],
    sent_ids: list[str] | None = None,
) -> list[str]:
    """Submit ``specs`` from ``config.submitters`` concurrent submitters; returns the ids in submission order
    (``sent_ids``, when given, collects them as they are sent)."""
    shares = [specs[i :: config.submitters] for i in range(config.submitters)]
    batch = min(config.batch, 1_000)
    headers = {"Authorization": f"Bearer {config.api_token}"} if config.api_token else {}
    client = httpx.AsyncClient(base_url=config.api_url, headers=headers, timeout=30, transport=config.transport)
    async with client:

        async def submitter(share: list[dict[str, Any]]) -> list[str]:
            ids: list[str] = []
            for start in range(0, len(share), batch):
                part = share[start : start + batch]
                if config.via == "http":
                    new = await _submit_http(client, part, batch)
                else:
                    new = await _submit_redis(app, part, batch)
                ids += new
                if sent_ids is not None:
                    sent_ids.extend(new)
                on_sent(len(part))
            return ids

        results = await asyncio.gather(*(submitter(share) for share in shares if share))
    return [job_id for ids in results for job_id in ids]


class NoLiveWorker(TickrError):
    """No live worker serves the queue a load run submits to: its jobs would never finish."""


@dataclass
class _Progress:
    """What the run has seen so far: counters relative to the run's start (the queue may have a history)."""

    baseline: dict[str, int]
    stats: dict[str, int] = field(default_factory=dict)

    def delta(self, name: str) -> int:
        return self.stats.get(name, 0) - self.baseline.get(name, 0)

    @property
    def finished(self) -> int:
        return self.delta("succeeded") + self.delta("dead")


def _workers_label(config: LoadConfig, external: Sequence[WorkerInfo]) -> str:
    if config.workers:
        return f"{config.workers} x {config.concurrency or Settings().concurrency}"
    sizes = sorted({info.concurrency or 0 for info in external})
    return f"external: {len(external)} x {'/'.join(str(size) for size in sizes) or '?'}"


async def report(
    app: App, queue: str, ids: list[str], elapsed: float, config: LoadConfig, progress: _Progress | None = None
) -> dict[str, Any]:
    """The end-of-run figures, from the job hashes and the queue's ``stats`` hash (counted since the start).

    Drain time runs from the first ``created_at`` to the last ``finished_at`` (``elapsed``, the
    client's wall time, only when the hashes lack them); wait is measured on first attempts only.
    """
    fields = ["status", "attempt", "created_at", "started_at", "finished_at"]
    rows = await read_jobs(app, queue, ids, fields)
    if progress is None:
        progress = _Progress(baseline={})
    progress.stats = await app.store.queues.counters(queue)
    run_ms = [int(r["finished_at"]) - int(r["started_at"]) for r in rows if r["finished_at"] and r["started_at"]]
    first = [r for r in rows if r["attempt"] == "1" and r["started_at"] and r["created_at"]]
    wait_ms = [int(r["started_at"]) - int(r["created_at"]) for r in first]
    created = [int(r["created_at"]) for r in rows if r["created_at"]]
    ended = [int(r["finished_at"]) for r in rows if r["finished_at"]]
    if created and ended:  # first enqueue to last finish, on the Redis clock
        elapsed = max(0.001, (max(ended) - min(created)) / 1000)
    succeeded = sum(1 for r in rows if r["status"] == "succeeded")
    dead = sum(1 for r in rows if r["status"] == "dead")
    return {
        "jobs": len(ids),
        "workers": _workers_label(config, await serving(app, queue) if not config.workers else ()),
        "drain_s": round(elapsed, 3),
        "startup_s": None,
        "drain_with_startup_s": None,
        "throughput_per_s": round(len(ids) / elapsed, 1) if elapsed else 0.0,
        "p95_run_ms": percentile(run_ms, 95),
        "p95_wait_ms": percentile(wait_ms, 95),
        "succeeded": succeeded,
        "dead": dead,
        "fail_pct": round(100 * dead / len(ids), 2) if ids else 0.0,
        "retries": progress.delta("retried"),
        "reaped": progress.delta("reaped"),
        "via": config.via,
        "queue": queue,
    }


async def _require_workers(app: App, queue: str, local: Sequence[WorkerProcess]) -> None:
    """Return once a live worker serves ``queue`` (every local one, when ``local`` were started).

    Raises ``NoLiveWorker`` after ``NO_WORKER_SECONDS`` without one, or when a local worker exits.
    """
    deadline = time.monotonic() + (LOCAL_START_SECONDS if local else NO_WORKER_SECONDS)
    while True:
        live = await serving(app, queue)
        if local:
            pids = {info.pid for info in live}
            if all(worker.pid in pids for worker in local):
                return
            if any(worker.exited for worker in local):
                raise NoLiveWorker(f"a local worker process exited during start-up (queue {queue!r})")
        elif live:
            return
        if time.monotonic() >= deadline:
            if local:
                raise NoLiveWorker(f"the local workers did not start within {LOCAL_START_SECONDS:g}s")
            raise NoLiveWorker(
                f"no live worker serves queue {queue!r}: start `tickr up` or `tickr worker -q {queue}` "
                "(on the same Redis), or pass --workers N to start local ones"
            )
        await asyncio.sleep(POLL_SECONDS)


async def _drain(
    config: LoadConfig,
    app: App,
    queue: str,
    specs: Sequence[dict[str, Any]],
    submitting: asyncio.Task[list[str]],
    progress: _Progress,
    on_progress: Callable[[int], None],
) -> str | None:
    """Wait until every submitted job is final; returns why it gave up (timeout, no worker) or None."""
    started = time.monotonic()
    last_seen = started  # when a live worker last served the queue
    next_check = started
    while True:
        progress.stats = await app.store.queues.counters(queue)
        on_progress(progress.finished)
        if submitting.done():
            if submitting.exception():
                return "submitting failed"
            if progress.finished >= len(specs) and await _all_final(app, queue, submitting.result()):
                return None
        now = time.monotonic()
        if now >= next_check:  # a worker that died mid-run would leave us waiting until the timeout
            next_check = now + 0.5
            if await serving(app, queue):
                last_seen = now
            elif now - last_seen >= NO_WORKER_SECONDS:
                return f"no live worker has served queue {queue!r} for {NO_WORKER_SECONDS:g}s"
        if now - started >= config.timeout:
            return f"not every job finished within {config.timeout:g}s"
        await asyncio.sleep(POLL_SECONDS * 5)


async def _all_final(app: App, queue: str, ids: Sequence[str]) -> bool:
    """True when every job of ``ids`` succeeded or died (the counters may include other producers' jobs)."""
    rows = await read_jobs(app, queue, ids, ["status"])
    return all(row["status"] in ("succeeded", "dead") for row in rows)


async def run_load(config: LoadConfig, on_progress: Callable[[int, int, int], None] | None = None) -> dict[str, Any]:
    """Run one load: check that workers serve the queue (or start local ones), submit, let them drain, report.

    ``on_progress(sent, finished, total)`` is called often. Raises ``NoLiveWorker`` when no worker serves the
    queue; the report's ``stopped`` says why a run gave up before every job finished.
    """
    app = App(settings=Settings(redis_url=config.redis_url))
    queue = config.queue or DEFAULT_QUEUE
    specs = plan(config, queue)
    sent = 0

    def on_sent(count: int) -> None:
        nonlocal sent
        sent += count

    def on_finished(finished: int) -> None:
        if on_progress:
            on_progress(sent, finished, config.n)

    workers = [WorkerProcess(config.redis_url, queue, concurrency=config.concurrency) for _ in range(config.workers)]
    launched = time.perf_counter()
    try:
        with running(workers):
            await _require_workers(app, queue, workers)
            startup = time.perf_counter() - launched
            progress = _Progress(baseline=await app.store.queues.counters(queue))
            started = time.perf_counter()
            sent_ids: list[str] = []
            submitting = asyncio.create_task(submit(config, app, specs, on_sent, sent_ids))
            stopped = await _drain(config, app, queue, specs, submitting, progress, on_finished)
            if not submitting.done():  # gave up while still submitting: report what was sent
                submitting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await submitting
            ids = submitting.result() if not submitting.cancelled() else sent_ids  # raises if submitting failed
            elapsed = time.perf_counter() - started
            result = await report(app, queue, ids, elapsed, config, progress)
        if config.workers:
            result["startup_s"] = round(startup, 3)
            result["drain_with_startup_s"] = round(startup + result["drain_s"], 3)
        result["completed"] = stopped is None
        result["stopped"] = stopped
        return result
    finally:
        await app.close()
