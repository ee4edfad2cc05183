"""``tickr load``: submit a mix of job types and priorities (via Redis or the HTTP API), run or watch workers, report.

Flaky and failing jobs get a short backoff (10 ms base, 100 ms cap) so a run ends in seconds, not minutes.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from tickr.app import App
from tickr.config import Settings
from tickr.loadgen.scenarios import percentile, read_jobs
from tickr.loadgen.target import WorkerProcess, new_queue, running

SHORT_BACKOFF = {"base": 0.01, "max": 0.1, "jitter": 1.0}
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
    """One load run. Percentages pick each job's type; ``priority_mix`` weights pick its priority."""

    redis_url: str
    n: int = 10_000
    submitters: int = 4
    pct_noop: float = 100.0
    pct_flaky: float = 0.0
    pct_fail: float = 0.0
    pct_sleep: float = 0.0
    sleep_ms: int = 10
    flaky_attempts: int = 1
    priority_mix: dict[str, int] = field(default_factory=lambda: {"default": 1})
    via: str = "redis"
    api_url: str = "http://127.0.0.1:8080"
    api_token: str | None = None
    queue: str | None = None
    workers: int = 0
    concurrency: int | None = None
    batch: int = 500
    timeout: float = 600.0
    keep: bool = False
    seed: int | None = None
    transport: httpx.AsyncBaseTransport | None = None  # tests: an in-process ASGI app instead of a server

    def __post_init__(self) -> None:
        weights = (self.pct_noop, self.pct_flaky, self.pct_fail, self.pct_sleep)
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError("the --pct-* values must be >= 0 and not all 0")
        if self.via not in ("redis", "http"):
            raise ValueError("--via is redis or http")


def plan(config: LoadConfig, queue: str) -> list[dict[str, Any]]:
    """The ``n`` job specs of a run (type, payload, queue, priority, max_retries, backoff)."""
    rng = random.Random(config.seed)
    types = rng.choices(
        MIX_TYPES, weights=(config.pct_noop, config.pct_flaky, config.pct_fail, config.pct_sleep), k=config.n
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
    config: LoadConfig, app: App, specs: list[dict[str, Any]], on_sent: Callable[[int], None]
) -> list[str]:
    """Submit ``specs`` from ``config.submitters`` concurrent submitters; returns the ids in submission order."""
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
                    ids += await _submit_http(client, part, batch)
                else:
                    ids += await _submit_redis(app, part, batch)
                on_sent(len(part))
            return ids

        results = await asyncio.gather(*(submitter(share) for share in shares if share))
    return [job_id for ids in results for job_id in ids]


async def finished_count(app: App, queue: str) -> tuple[int, dict[str, int]]:
    """Jobs that reached a final state (succeeded or dead) and the queue's counters."""
    stats = await app.store.queues.counters(queue)
    return stats["succeeded"] + stats["dead"], stats


def _workers_label(config: LoadConfig) -> str:
    if not config.workers:
        return "external"
    return f"{config.workers} x {config.concurrency or Settings().concurrency}"


async def report(app: App, queue: str, ids: list[str], elapsed: float, config: LoadConfig) -> dict[str, Any]:
    """The end-of-run figures, from the job hashes and the queue's ``stats`` hash.

    Drain time runs from the first ``created_at`` to the last ``finished_at`` (``elapsed``, the
    client's wall time, only when the hashes lack them); wait is measured on first attempts only.
    """
    fields = ["status", "attempt", "created_at", "started_at", "finished_at"]
    rows = await read_jobs(app, queue, ids, fields)
    _, stats = await finished_count(app, queue)
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
        "workers": _workers_label(config),
        "drain_s": round(elapsed, 3),
        "throughput_per_s": round(len(ids) / elapsed, 1) if elapsed else 0.0,
        "p95_run_ms": percentile(run_ms, 95),
        "p95_wait_ms": percentile(wait_ms, 95),
        "succeeded": succeeded,
        "dead": dead,
        "fail_pct": round(100 * dead / len(ids), 2) if ids else 0.0,
        "retries": stats.get("retried", 0),
        "reaped": stats.get("reaped", 0),
        "via": config.via,
        "queue": queue,
    }


async def run_load(config: LoadConfig, on_progress: Callable[[int, int, int], None] | None = None) -> dict[str, Any]:
    """Run one load: submit, let the workers drain, report. ``on_progress(sent, finished, total)`` is called often."""
    app = App(settings=Settings(redis_url=config.redis_url))
    queue = config.queue or new_queue()
    specs = plan(config, queue)
    sent = 0

    def on_sent(count: int) -> None:
        nonlocal sent
        sent += count

    workers = [WorkerProcess(config.redis_url, queue, concurrency=config.concurrency) for _ in range(config.workers)]
    try:
        with running(workers):
            started = time.perf_counter()
            submitting = asyncio.create_task(submit(config, app, specs, on_sent))
            finished = 0
            while finished < config.n and time.perf_counter() - started < config.timeout:
                finished, _ = await finished_count(app, queue)
                if on_progress:
                    on_progress(sent, finished, config.n)
                if submitting.done() and submitting.exception():
                    break
                await asyncio.sleep(0.1)
            ids = await submitting
            finished, _ = await finished_count(app, queue)
            elapsed = time.perf_counter() - started
            if on_progress:
                on_progress(sent, finished, config.n)
        result = await report(app, queue, ids, elapsed, config)
        result["completed"] = finished >= config.n
        return result
    finally:
        if not config.keep and config.queue is None:
            await app.store.queues.delete(queue)
        await app.close()
