"""``tickr bench``: runs the scenarios a number of times, takes medians, and reports them with targets and versions."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from rich.table import Table

from tickr.app import App
from tickr.config import Settings
from tickr.loadgen import scenarios as sc
from tickr.loadgen.history_bench import history
from tickr.loadgen.target import describe, redis_target

ALL_SCENARIOS = ("enqueue", "drain", "latency", "delayed", "memory", "history", "scale")
DEFAULT_SCENARIOS = ("enqueue", "drain", "latency", "delayed", "memory", "history")

# (scenario, metric) -> (label, unit, comparison, target); the targets for a 2-core machine.
TARGETS: dict[tuple[str, str], tuple[str, str, str, float]] = {
    ("enqueue", "one_by_one_per_s"): ("enqueue one by one (1 in flight)", "jobs/s", ">=", 10_000),
    ("enqueue", "concurrent_per_s"): ("enqueue one by one (32 callers)", "jobs/s", "", 0),
    ("enqueue", "batched_per_s"): ("enqueue batched (enqueue_many)", "jobs/s", ">=", 50_000),
    ("drain", "jobs_per_s"): ("drain, 1 worker process", "jobs/s", ">=", 25_000),
    ("drain", "process_jobs_per_s"): ("drain, 1 process, wall incl. start-up", "jobs/s", "", 0),
    ("drain", "redis_cpu_us_per_job"): ("Redis CPU per drained job", "µs", "", 0),
    ("drain", "redis_commands_per_job"): ("Redis commands per drained job", "calls", "", 0),
    ("drain2", "jobs_per_s"): ("drain, --processes 2", "jobs/s", "", 0),
    ("drain2", "process_jobs_per_s"): ("drain, 2 processes, wall incl. start-up", "jobs/s", "", 0),
    ("latency", "p50_ms"): ("enqueue-to-start p50", "ms", "", 0),
    ("latency", "p95_ms"): ("enqueue-to-start p95", "ms", "", 0),
    ("latency", "p99_ms"): ("enqueue-to-start p99", "ms", "<=", 1.0),
    ("latency", "server_p99_ms"): ("enqueue-to-start p99, Redis clock (ms ticks)", "ms", "", 0),
    ("delayed", "p50_ms"): ("delayed lateness p50", "ms", "", 0),
    ("delayed", "p99_ms"): ("delayed lateness p99", "ms", "<=", 3.0),
    ("memory", "bytes_per_job"): ("Redis memory per queued job", "bytes", "<=", 400),
    ("memory", "job_hash_bytes"): ("one job hash (MEMORY USAGE)", "bytes", "", 0),
    ("history", "off_jobs_per_s"): ("drain, history off (TICKR_HISTORY=false)", "jobs/s", "", 0),
    ("history", "sqlite_jobs_per_s"): ("drain, history on, SQLite sink", "jobs/s", "", 0),
    ("history", "sqlite_ratio"): ("drain history SQLite / off", "ratio", ">=", 0.7),
    ("history", "sqlite_lag_s"): ("sink lag after the burst, SQLite", "s", "", 0),
    ("history", "postgres_jobs_per_s"): ("drain, history on, PostgreSQL sink", "jobs/s", "", 0),
    ("history", "postgres_ratio"): ("drain history PostgreSQL / off", "ratio", ">=", 0.7),
    ("history", "postgres_lag_s"): ("sink lag after the burst, PostgreSQL", "s", "", 0),
    ("scale", "small_jobs_per_s"): ("drain, small queue (see notes)", "jobs/s", "", 0),
    ("scale", "large_jobs_per_s"): ("drain, large queue (see notes)", "jobs/s", "", 0),
    ("scale", "ratio"): ("drain jobs/s, large / small queue", "ratio", ">=", 0.8),
}


@dataclass
class BenchConfig:
    """What to run: scenarios, sizes, runs. ``quick`` shrinks every size for a smoke run."""

    redis_url: str | None = None
    scenarios: tuple[str, ...] = DEFAULT_SCENARIOS
    n: int = 20_000
    runs: int = 3
    latency_jobs: int = 500
    latency_rate: float = 200.0
    delayed_jobs: int = 200
    delayed_ahead: float = 2.0
    memory_jobs: int = 100_000
    scale_small: int = 10_000
    scale_large: int = 1_000_000
    history_db: str | None = None  # PostgreSQL server for the history scenario (a fresh database is made on it)

    @classmethod
    def quick(cls, **overrides: Any) -> BenchConfig:
        """Small sizes: a functional run in seconds, not a measurement."""
        base: dict[str, Any] = {
            "n": 2_000,
            "runs": 1,
            "latency_jobs": 50,
            "delayed_jobs": 20,
            "delayed_ahead": 0.5,
            "memory_jobs": 5_000,
            "scale_small": 1_000,
            "scale_large": 5_000,
        }
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)


Progress = Callable[[str], None]


async def _one(config: BenchConfig, url: str, name: str) -> list[tuple[str, sc.Outcome]]:
    """One run of scenario ``name``: ``(result key, outcome)`` pairs (drain yields two)."""
    if name == "enqueue":
        return [("enqueue", await sc.enqueue_rate(url, config.n))]
    if name == "drain":
        return [("drain", await sc.drain(url, config.n)), ("drain2", await sc.drain(url, config.n, processes=2))]
    if name == "latency":
        return [("latency", await sc.latency(url, config.latency_jobs, config.latency_rate))]
    if name == "delayed":
        return [("delayed", await sc.delayed(url, config.delayed_jobs, config.delayed_ahead))]
    if name == "memory":
        return [("memory", await sc.memory(config.memory_jobs))]
    if name == "history":
        return [("history", await history(url, config.n, config.history_db))]
    if name == "scale":
        return [("scale", await sc.scale(url, config.scale_small, config.scale_large))]
    raise ValueError(f"unknown scenario {name!r}")


async def run_bench(config: BenchConfig, progress: Progress = lambda _: None) -> dict[str, Any]:
    """Run the configured scenarios ``config.runs`` times each; returns the report (JSON-ready)."""
    unknown = set(config.scenarios) - set(ALL_SCENARIOS)
    if unknown:
        raise ValueError(f"unknown scenario(s): {', '.join(sorted(unknown))}; choose from {', '.join(ALL_SCENARIOS)}")
    started = time.time()
    with redis_target(config.redis_url) as url:
        app = App(settings=Settings(redis_url=url))
        try:
            machine = await describe(app, url_given=bool(config.redis_url))
        finally:
            await app.close()
        collected: dict[str, list[sc.Outcome]] = {}
        for name in config.scenarios:
            for run in range(config.runs):
                progress(f"{name}: run {run + 1} of {config.runs}")
                for key, outcome in await _one(config, url, name):
                    collected.setdefault(key, []).append(outcome)
    settings = Settings()
    results = {key: sc.summary(outcomes) for key, outcomes in collected.items()}
    return {
        "machine": machine,
        "config": asdict(config),
        "settings": {
            "concurrency": settings.concurrency,
            "events_maxlen": settings.events_maxlen,
            "lease_seconds": settings.lease_seconds,
            "done_max": settings.done_max,
        },
        "results": results,
        "targets": {
            f"{s}.{m}": {"label": t[0], "unit": t[1], "op": t[2], "value": t[3]} for (s, m), t in TARGETS.items()
        },
        "started_at": started,
        "seconds": round(time.time() - started, 1),
    }


def met(op: str, value: float, target: float) -> bool | None:
    if op == ">=":
        return value >= target
    if op == "<=":
        return value <= target
    return None


def _fmt(value: float, unit: str) -> str:
    if unit == "ms":
        return f"{value:.3f}"
    if unit == "s":
        return f"{value:.2f}"
    if unit in ("ratio", "calls"):
        return f"{value:.2f}"
    if unit == "µs":
        return f"{value:.1f}"
    return f"{value:,.0f}"


def render(report: dict[str, Any]) -> Table:
    """The report as a table: one row per headline metric, median first, then each run."""
    m = report["machine"]
    table = Table(
        title=f"tickr bench — median of {report['config']['runs']} run(s)",
        caption=(
            f"tickr {m['tickr']} · Python {m['python']} · {m['server']} ({m['server_source']}, {m['server_allocator']})"
            f" · redis-py {m['redis_py']} · hiredis {m['hiredis']} · uvloop {m['uvloop']}"
            f" · {m['cores']} cores {m['cpu']} · worker concurrency {report['settings']['concurrency']}"
        ),
    )
    for column in ("scenario", "median", "unit", "runs", "target", "met"):
        table.add_column(column, justify="left" if column in ("scenario", "unit") else "right")
    results = report["results"]
    for (scenario, metric), (label, unit, op, target) in TARGETS.items():
        result = results.get(scenario)
        if result is None or metric not in result["metrics"]:
            continue
        value = result["metrics"][metric]
        runs = " / ".join(_fmt(v, unit) for v in result["runs"][metric])
        verdict = met(op, value, target)
        mark = "" if verdict is None else ("yes" if verdict else "NO")
        table.add_row(label, _fmt(value, unit), unit, runs, f"{op} {_fmt(target, unit)}" if op else "", mark)
    return table
