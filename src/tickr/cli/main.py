"""The ``tickr`` command line: one entry point, one sub-command per role or operation."""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Annotated

import typer

from tickr.config import Settings
from tickr.core.errors import ConfigError, TickrError
from tickr.runtime.logging import configure_logging

cli = typer.Typer(
    name="tickr",
    help="tickr: a distributed job scheduler for Python.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_FAILED = 1
EXIT_USAGE = 2


def fail_usage(message: str) -> typer.Exit:
    """Print a one-line usage error and return the exit to raise (code 2)."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(EXIT_USAGE)


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with command-line values that were given on top."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
    except Exception as exc:  # pydantic ValidationError: bad TICKR_* value
        raise fail_usage(f"bad configuration: {exc}") from None


def try_uvloop() -> None:
    """Use uvloop when it is installed (a faster event loop)."""
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


@cli.command()
def worker(
    app: Annotated[
        str | None, typer.Argument(help="module:attr of your tickr.App (built-in job types only if omitted)")
    ] = None,
    queues: Annotated[str | None, typer.Option("--queues", "-q", help="comma-separated queues")] = None,
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", "-c", min=1, help="jobs at once per process")
    ] = None,
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
) -> None:
    """Run jobs from the given queues."""
    settings = load_settings(queues=queues, concurrency=concurrency, redis_url=redis_url, shutdown_grace_seconds=grace)
    configure_logging(settings.log_level, settings.log_format)
    from tickr.runtime.up import discover_redis_url

    url = discover_redis_url(settings)  # a `tickr up` running in this data directory will do
    if not url:
        raise fail_usage("no Redis: set TICKR_REDIS_URL or pass --redis-url (or use `tickr up`)")
    settings = settings.model_copy(update={"redis_url": url})
    if processes > 1:
        from tickr.worker.supervisor import Supervisor, worker_command

        argv = [a for a in sys.argv[1:]]
        child = _strip_option(argv, ("--processes", "-p"))
        raise typer.Exit(Supervisor(worker_command(child), processes).run())

    from tickr.runtime.loader import load_app
    from tickr.worker.worker import Worker, WorkerConfig

    try:
        tickr_app = load_app(app, settings)
    except ConfigError as exc:
        raise fail_usage(str(exc)) from None
    config = WorkerConfig(
        queues=settings.queue_list(),
        concurrency=settings.concurrency,
        burst=burst,
        grace_seconds=settings.shutdown_grace_seconds,
        wake_cap_seconds=settings.wake_cap_seconds,
        reaper=not no_reaper,
    )

    async def main() -> None:
        from tickr.scheduler.service import SchedulerService

        stop_scheduler = asyncio.Event()
        scheduler = None
        if not (burst or no_scheduler):  # schedulers need no leader: every worker may run one
            scheduler = asyncio.create_task(SchedulerService(tickr_app).run(stop_scheduler))
        try:
            await Worker(tickr_app, config).run(install_signals=True)
        finally:
            stop_scheduler.set()
            if scheduler is not None:
                await asyncio.gather(scheduler, return_exceptions=True)
            await tickr_app.close()

    try_uvloop()
    try:
        asyncio.run(main())
    except TickrError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_FAILED) from None


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
    app: Annotated[str | None, typer.Argument(help="module:attr of your tickr.App")] = None,
    concurrency: Annotated[int | None, typer.Option("--concurrency", "-c", min=1)] = None,
    data_dir: Annotated[str | None, typer.Option("--data-dir", envvar="TICKR_DATA_DIR")] = None,
    host: Annotated[str | None, typer.Option("--host", envvar="TICKR_API_HOST", help="API address")] = None,
    port: Annotated[int | None, typer.Option("--port", envvar="TICKR_API_PORT", help="API port")] = None,
    insecure: Annotated[bool, typer.Option("--insecure", help="serve beyond loopback without a token")] = False,
) -> None:
    """Run everything in one process: embedded Valkey (unless TICKR_REDIS_URL), API, workers, reaper."""
    settings = load_settings(concurrency=concurrency, data_dir=data_dir, api_host=host, api_port=port)
    configure_logging(settings.log_level, settings.log_format)
    from tickr.api.server import check_bind, serve
    from tickr.runtime.up import run_up
    from tickr.scheduler.service import scheduler_service

    try:
        check_bind(settings.api_host, settings.api_token, insecure)
    except ConfigError as exc:
        raise fail_usage(str(exc)) from None

    async def api_service(running: Settings, stop: asyncio.Event) -> None:
        if running.api_port:
            typer.echo(f"tickr API and docs at http://{running.api_host}:{running.api_port}/docs", err=True)
        await serve(running, None, stop)

    try_uvloop()
    try:
        asyncio.run(run_up(settings, app, settings.concurrency, extra_services=[api_service, scheduler_service(app)]))
    except TickrError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_FAILED) from None


@cli.command()
def api(
    host: Annotated[str | None, typer.Option("--host", envvar="TICKR_API_HOST")] = None,
    port: Annotated[int | None, typer.Option("--port", envvar="TICKR_API_PORT")] = None,
    redis_url: Annotated[str | None, typer.Option("--redis-url", envvar="TICKR_REDIS_URL")] = None,
    insecure: Annotated[bool, typer.Option("--insecure", help="serve beyond loopback without a token")] = False,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs)."""
    settings = load_settings(api_host=host, api_port=port, redis_url=redis_url)
    configure_logging(settings.log_level, settings.log_format)
    from tickr.api.server import check_bind, serve
    from tickr.runtime.up import discover_redis_url

    url = discover_redis_url(settings)
    if not url:
        raise fail_usage("no Redis: set TICKR_REDIS_URL or pass --redis-url (or use `tickr up`)")
    settings = settings.model_copy(update={"redis_url": url})
    try:
        check_bind(settings.api_host, settings.api_token, insecure)
    except ConfigError as exc:
        raise fail_usage(str(exc)) from None

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        typer.echo(f"tickr API at http://{settings.api_host}:{settings.api_port}/docs", err=True)
        await serve(settings, None, stop)

    try_uvloop()
    try:
        asyncio.run(main())
    except TickrError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_FAILED) from None


def _register_commands() -> None:
    from tickr.cli import bench, ops, schedules

    ops.register(cli)
    schedules.register(cli)
    bench.register(cli)


_register_commands()


def main() -> None:
    """Console-script entry point."""
    cli()
