"""``tickr bench`` (benchmark scenarios, medians, targets) and ``tickr load`` (a workload mix with a progress bar)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tickr.cli.common import fail_usage as _usage
from tickr.cli.common import load_settings as _load_settings
from tickr.cli.common import require_redis as _require_redis
from tickr.cli.common import run_async as _run_async
from tickr.cli.common import try_uvloop as _uvloop


def bench(
    redis_url: Annotated[
        str | None, typer.Option("--redis-url", help="Redis to measure (default: a private embedded Valkey)")
    ] = None,
    scenarios: Annotated[
        str, typer.Option("--scenarios", help="comma-separated: enqueue,drain,latency,delayed,memory,history,scale")
    ] = "enqueue,drain,latency,delayed,memory,history",
    n: Annotated[int | None, typer.Option("-n", min=1, help="jobs per enqueue/drain run (default 20,000)")] = None,
    runs: Annotated[int | None, typer.Option("--runs", min=1, help="runs per scenario; the median is reported")] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="also write the report as JSON here")] = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="small sizes, one run: a smoke test, not a measurement")
    ] = False,
    history_db: Annotated[
        str | None,
        typer.Option("--history-db", help="PostgreSQL server for `history` (a fresh database is made and dropped)"),
    ] = None,
    scale_max: Annotated[
        int | None, typer.Option("--scale-max", min=1, help="queued jobs for the large side of `scale`")
    ] = None,
) -> None:
    """Measure enqueue rate, drain throughput, enqueue-to-start latency, delayed lateness and memory per job."""
    from tickr.loadgen.bench import BenchConfig, render, run_bench

    names = tuple(s.strip() for s in scenarios.split(",") if s.strip())
    overrides: dict[str, Any] = {
        "redis_url": redis_url,
        "scenarios": names,
        "n": n,
        "runs": runs,
        "history_db": history_db,
    }
    if scale_max is not None:
        overrides["scale_large"] = scale_max
    config = BenchConfig.quick(**overrides) if quick else BenchConfig(**{k: v for k, v in overrides.items() if v})
    console = Console()
    _uvloop()
    with console.status("benchmark starting") as status:
        try:
            report = asyncio.run(run_bench(config, progress=lambda text: status.update(text)))
        except ValueError as exc:
            raise _usage(str(exc)) from None
    console.print(render(report))
    for name, result in report["results"].items():
        if result["notes"]:
            console.print(f"  {name}: " + ", ".join(f"{k}={v}" for k, v in result["notes"].items()))
    if json_path is not None:
        json_path.write_text(json.dumps(report, indent=2))
        console.print(f"report written to {json_path}")


def load(
    n: Annotated[int, typer.Option("-n", min=1, help="jobs to submit")] = 10_000,
    submitters: Annotated[int, typer.Option("-w", "--submitters", min=1, help="concurrent submitters")] = 4,
    pct_noop: Annotated[
        float | None, typer.Option("--pct-noop", min=0, help="default: what the other --pct-* leave of 100")
    ] = None,
    pct_flaky: Annotated[float, typer.Option("--pct-flaky", min=0)] = 0.0,
    pct_fail: Annotated[float, typer.Option("--pct-fail", min=0)] = 0.0,
    pct_sleep: Annotated[float, typer.Option("--pct-sleep", min=0)] = 0.0,
    sleep_ms: Annotated[int, typer.Option("--sleep-ms", min=0, help="duration of `sleep` jobs")] = 10,
    flaky_attempts: Annotated[int, typer.Option("--flaky-attempts", min=0, help="failures before success")] = 1,
    priority_mix: Annotated[str, typer.Option("--priority-mix", help="e.g. critical=1,high=2,default=5,low=2")] = (
        "default=1"
    ),
    via: Annotated[str, typer.Option("--via", help="redis (enqueue_many) or http (the API's batch route)")] = "redis",
    api_url: Annotated[str, typer.Option("--api-url", help="base URL of `tickr api`")] = "http://127.0.0.1:8080",
    api_token: Annotated[str | None, typer.Option("--api-token", envvar="TICKR_API_TOKEN")] = None,
    queue: Annotated[str, typer.Option("--queue", "-q", help="the queue to load (the running system's)")] = "default",
    workers: Annotated[
        int, typer.Option("--workers", min=0, help="local worker processes to start (0: the running workers)")
    ] = 0,
    concurrency: Annotated[int | None, typer.Option("--concurrency", "-c", min=1, help="per worker process")] = None,
    redis_url: Annotated[str | None, typer.Option("--redis-url", envvar="TICKR_REDIS_URL")] = None,
    timeout: Annotated[float, typer.Option("--timeout", min=1, help="give up after this many seconds")] = 600.0,
    json_path: Annotated[Path | None, typer.Option("--json", help="also write the figures as JSON here")] = None,
) -> None:
    """Submit a mix of job types and priorities to a queue, let its workers drain it, and report what happened.

    The jobs go to the running system (TICKR_REDIS_URL, --redis-url, or the `tickr up` of this data directory)
    on queue `default`; without a live worker serving the queue (and no --workers N) it says so and exits 1.
    """
    from tickr.loadgen.load import LoadConfig, parse_mix, run_load

    settings = _require_redis(_load_settings(redis_url=redis_url))
    try:
        config = LoadConfig(
            redis_url=settings.redis_url or "",
            n=n,
            submitters=submitters,
            pct_noop=pct_noop,
            pct_flaky=pct_flaky,
            pct_fail=pct_fail,
            pct_sleep=pct_sleep,
            sleep_ms=sleep_ms,
            flaky_attempts=flaky_attempts,
            priority_mix=parse_mix(priority_mix),
            via=via,
            api_url=api_url,
            api_token=api_token,
            queue=queue,
            workers=workers,
            concurrency=concurrency,
            timeout=timeout,
        )
    except ValueError as exc:
        raise _usage(str(exc)) from None
    console = Console()
    _uvloop()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        sent_bar = progress.add_task("submitted", total=n)
        done_bar = progress.add_task("finished ", total=n)

        def update(sent: int, finished: int, total: int) -> None:
            progress.update(sent_bar, completed=sent)
            progress.update(done_bar, completed=min(finished, total))

        result = _run_async(lambda: run_load(config, update))
    console.print(_load_table(result))
    if json_path is not None:
        json_path.write_text(json.dumps(result, indent=2))
    if not result["completed"]:
        typer.echo(f"error: {result['stopped']}", err=True)
        raise typer.Exit(1)


def _load_table(result: dict[str, Any]) -> Table:
    table = Table(title=f"tickr load — {result['jobs']:,} jobs via {result['via']} on {result['queue']}")
    with_startup = result.get("drain_with_startup_s")
    rows = [
        ("burst size", f"{result['jobs']:,}"),
        ("workers x concurrency", result["workers"]),
        ("drain time (workers already running)", f"{result['drain_s']:.2f} s"),
        (
            "drain time incl. worker start-up",
            f"{with_startup:.2f} s" if with_startup is not None else "n/a (workers were running)",
        ),
        ("throughput", f"{result['throughput_per_s']:,.0f} jobs/s"),
        ("p95 run time", f"{result['p95_run_ms']:.0f} ms"),
        ("p95 wait (start - created, 1st attempts)", f"{result['p95_wait_ms']:.0f} ms"),
        ("succeeded / dead", f"{result['succeeded']:,} / {result['dead']:,}"),
        ("fail %", f"{result['fail_pct']:.2f}"),
        ("retries", f"{result['retries']:,}"),
        ("reaped", f"{result['reaped']:,}"),
    ]
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in rows:
        table.add_row(name, value)
    return table


def register(cli: typer.Typer) -> None:
    """Add ``bench`` and ``load`` to the ``tickr`` command line."""
    cli.command("bench")(bench)
    cli.command("load")(load)
