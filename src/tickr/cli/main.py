"""The ``tickr`` command line: one entry point, one sub-command per role or operation."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from tickr.cli import bench, history_commands, migrate_commands, ops, schedule_commands
from tickr.cli.common import (
    EXIT_FAILED,
    EXIT_USAGE,
    AppsArg,
    ConcurrencyOpt,
    QueuesOpt,
    fail_usage,
    load_settings,
    require_redis,
    run_async,
    try_uvloop,
)
from tickr.core.errors import ConfigError
from tickr.runtime.logging import configure_logging

__all__ = ["EXIT_FAILED", "EXIT_USAGE", "cli", "main"]

cli = typer.Typer(
    name="tickr",
    help="tickr: a distributed job scheduler for Python.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@cli.command()
def worker(
    app: AppsArg = None,
    queues: QueuesOpt = None,
    concurrency: ConcurrencyOpt = None,
    processes: Annotated[int, typer.Option("--processes", "-p", min=1, help="worker processes to supervise")] = 1,
    burst: Annotated[bool, typer.Option("--burst", help="exit once the queues are empty")] = False,
    redis_url: Annotated[str | None, typer.Option("--redis-url", envvar="TICKR_REDIS_URL")] = None,
    grace: Annotated[
        float | None, typer.Option("--grace", min=0, help="seconds in-flight jobs may finish on stop")
    ] = None,
    no_reaper: Annotated[bool, typer.Option("--no-reaper", help="do not run the lease reaper in this worker")] = False,
    no_scheduler: Annotated[
        bool, typer.Option("--no-scheduler", help="do not fire cron schedules from this worker")
    ] = False,
    metrics_port: Annotated[
        int | None,
        typer.Option("--metrics-port", min=0, max=65535, help="serve /metrics here (with -p: one merged endpoint)"),
    ] = None,
) -> None:
    """Run jobs from the given queues."""
    settings = load_settings(
        queues=queues,
        concurrency=concurrency,
        redis_url=redis_url,
        shutdown_grace_seconds=grace,
        metrics_port=metrics_port,
    )
    configure_logging(settings.log_level, settings.log_format)
    settings = require_redis(settings)  # a `tickr up` running in this data directory will do
    port = settings.metrics_port if settings.metrics else None
    metrics = (settings.metrics_host, port) if port is not None else None
    if processes > 1:
        from tickr.worker.supervisor import Supervisor, worker_command

        child = _strip_option(_strip_option(sys.argv[1:], ("--processes", "-p")), ("--metrics-port",))
        raise typer.Exit(Supervisor(worker_command(child), processes, metrics=metrics).run())

    from tickr.runtime.loader import load_app
    from tickr.runtime.services import ProcessPlan, run_worker_process
    from tickr.worker.worker import WorkerConfig

    try:
        tickr_app = load_app(app, settings)
    except ConfigError as exc:
        raise fail_usage(str(exc)) from None
    config = WorkerConfig.from_settings(settings, burst=burst, reaper=not no_reaper)
    plan = ProcessPlan(scheduler=not no_scheduler, metrics=metrics)
    try_uvloop()
    run_async(lambda: run_worker_process(tickr_app, config, plan))


def _strip_option(argv: list[str], names: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in names:
            skip = True
            continue
        if any(arg.startswith(n + "=") for n in names if n.startswith("--")):
            continue
        out.append(arg)
    return out


@cli.command()
def up(
    apps: AppsArg = None,
    queues: QueuesOpt = None,
    concurrency: ConcurrencyOpt = None,
    processes: Annotated[int, typer.Option("--processes", "-p", min=1, help="worker processes in all")] = 1,
    data_dir: Annotated[str | None, typer.Option("--data-dir", envvar="TICKR_DATA_DIR")] = None,
    host: Annotated[str | None, typer.Option("--host", envvar="TICKR_API_HOST", help="API address")] = None,
    port: Annotated[int | None, typer.Option("--port", envvar="TICKR_API_PORT", help="API port (0: no API)")] = None,
    insecure: Annotated[bool, typer.Option("--insecure", help="serve beyond loopback without a token")] = False,
) -> None:
    """Run everything in one process: embedded Valkey (unless TICKR_REDIS_URL), API, workers, scheduler, reaper."""
    settings = load_settings(queues=queues, concurrency=concurrency, data_dir=data_dir, api_host=host, api_port=port)
    configure_logging(settings.log_level, settings.log_format)
    from tickr.api.server import check_bind
    from tickr.runtime.loader import load_app
    from tickr.runtime.up import run_up

    try:
        check_bind(settings.api_host, settings.api_token, insecure)
        load_app(apps, settings)  # fail on a bad app (exit 2) before the server starts
    except ConfigError as exc:
        raise fail_usage(str(exc)) from None
    try_uvloop()
    run_async(
        lambda: run_up(
            settings,
            apps,
            serve_api=bool(settings.api_port),
            processes=processes,
            announce=lambda text: typer.echo(text, err=True),
        )
    )


@cli.command()
def api(
    host: Annotated[str | None, typer.Option("--host", envvar="TICKR_API_HOST")] = None,
    port: Annotated[int | None, typer.Option("--port", envvar="TICKR_API_PORT")] = None,
    redis_url: Annotated[str | None, typer.Option("--redis-url", envvar="TICKR_REDIS_URL")] = None,
    insecure: Annotated[bool, typer.Option("--insecure", help="serve beyond loopback without a token")] = False,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs)."""
    settings = require_redis(load_settings(api_host=host, api_port=port, redis_url=redis_url))
    configure_logging(settings.log_level, settings.log_format)
    from tickr.api.server import check_bind
    from tickr.runtime.services import run_api

    try:
        check_bind(settings.api_host, settings.api_token, insecure)
    except ConfigError as exc:
        raise fail_usage(str(exc)) from None
    typer.echo(f"tickr API at http://{settings.api_host}:{settings.api_port}/docs", err=True)
    try_uvloop()
    run_async(lambda: run_api(settings))


ops.register(cli)
schedule_commands.register(cli)
history_commands.register(cli)
migrate_commands.register(cli)
bench.register(cli)


def main() -> None:
    """Console-script entry point."""
    cli()
