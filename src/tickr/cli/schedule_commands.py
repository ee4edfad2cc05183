"""``tickr scheduler`` (the cron service) and ``tickr schedules list|show|pause|resume|delete|next|history``.

Exit codes: 0 ok, 1 the operation failed (unknown id, Redis unreachable), 2 bad usage (one-line reason).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from tickr.app import App
from tickr.cli.common import (
    JsonOpt,
    PrefixOpt,
    RedisOpt,
    fail_usage,
    load_settings,
    require_redis,
    run_async,
    run_with_app,
    try_uvloop,
)
from tickr.config import Settings
from tickr.core.errors import ConfigError, JobNotFound, TickrError
from tickr.core.schedule import Schedule

T = TypeVar("T")

schedules_app = typer.Typer(
    name="schedules", help="Inspect and manage recurring jobs (cron schedules).", no_args_is_help=True
)

RedisUrl = RedisOpt
Prefix = PrefixOpt
AsJson = JsonOpt
ScheduleId = Annotated[str, typer.Argument(help="schedule id")]


def register(cli: typer.Typer) -> None:
    """Add ``tickr scheduler`` and the ``tickr schedules`` group to the main CLI."""
    cli.command("scheduler")(scheduler)
    cli.add_typer(schedules_app, name="schedules")


def _app(redis_url: str | None, prefix: str | None) -> tuple[Settings, str | None]:
    return load_settings(redis_url=redis_url), prefix


def _run(target: tuple[Settings, str | None], action: Callable[[App], Awaitable[T]]) -> T:
    """Run ``action`` against the schedules; an unknown schedule id is reported as such."""

    async def named(app: App) -> T:
        try:
            return await action(app)
        except JobNotFound as exc:
            raise TickrError(f"no schedule {exc.job_id!r}") from None

    settings, prefix = target
    return run_with_app(settings, named, prefix)


def scheduler(
    app: Annotated[
        str | None, typer.Argument(help="module:attr of your tickr.App (its @task(cron=...) definitions are synced)")
    ] = None,
    redis_url: RedisUrl = None,
    prefix: Prefix = None,
) -> None:
    """Run the cron scheduler until SIGINT/SIGTERM. Run as many as you like: each occurrence fires once."""
    from tickr.runtime.loader import load_app
    from tickr.runtime.logging import configure_logging
    from tickr.runtime.services import run_scheduler

    settings = require_redis(load_settings(redis_url=redis_url))
    configure_logging(settings.log_level, settings.log_format)
    try:
        tickr_app = load_app(app, settings)
    except ConfigError as exc:
        raise fail_usage(str(exc)) from None
    if prefix:
        tickr_app.prefix = prefix
    try_uvloop()
    run_async(lambda: run_scheduler(tickr_app))


@schedules_app.command("list")
def list_(
    redis_url: RedisUrl = None,
    prefix: Prefix = None,
    as_json: AsJson = False,
    all_: Annotated[bool, typer.Option("--all", help="include deleted schedules")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 100,
    cursor: Annotated[str | None, typer.Option("--cursor", help="next_cursor of the previous page")] = None,
) -> None:
    """List schedules in creation order."""
    from tickr.scheduler.manager import Schedules

    page = _run(
        _app(redis_url, prefix),
        lambda a: Schedules(a).list_schedules(limit=limit, cursor=cursor, include_deleted=all_),
    )
    if as_json:
        _json({"items": [s.to_dict() for s in page.items], "next_cursor": page.next_cursor})
        return
    table = Table("id", "name / type", "cron", "timezone", "state", "next run (UTC)", "fired", "misfired", "skipped")
    for s in page.items:
        table.add_row(
            s.id,
            s.name or s.template.type,
            s.cron,
            s.timezone,
            _state(s),
            _when(s.next_run_at) if s.is_active and not s.deleted else "-",
            str(s.fired),
            str(s.misfired),
            str(s.skipped_overlap),
        )
    Console().print(table)
    if page.next_cursor:
        typer.echo(f"more: --cursor {page.next_cursor}")


@schedules_app.command()
def show(schedule_id: ScheduleId, redis_url: RedisUrl = None, prefix: Prefix = None, as_json: AsJson = False) -> None:
    """Show one schedule."""
    from tickr.scheduler.manager import Schedules

    _print_schedule(_run(_app(redis_url, prefix), lambda a: Schedules(a).require(schedule_id)), as_json)


@schedules_app.command()
def pause(schedule_id: ScheduleId, redis_url: RedisUrl = None, prefix: Prefix = None, as_json: AsJson = False) -> None:
    """Stop firing a schedule until it is resumed."""
    from tickr.scheduler.manager import Schedules

    _done("paused", _run(_app(redis_url, prefix), lambda a: Schedules(a).pause(schedule_id)), as_json)


@schedules_app.command()
def resume(schedule_id: ScheduleId, redis_url: RedisUrl = None, prefix: Prefix = None, as_json: AsJson = False) -> None:
    """Fire a paused (or deleted) schedule again, from its next occurrence after now."""
    from tickr.scheduler.manager import Schedules

    _done("resumed", _run(_app(redis_url, prefix), lambda a: Schedules(a).resume(schedule_id)), as_json)


@schedules_app.command()
def delete(schedule_id: ScheduleId, redis_url: RedisUrl = None, prefix: Prefix = None, as_json: AsJson = False) -> None:
    """Soft-delete a schedule: it stops firing, its history is kept; `resume` brings it back."""
    from tickr.scheduler.manager import Schedules

    _done("deleted", _run(_app(redis_url, prefix), lambda a: Schedules(a).delete(schedule_id)), as_json)


@schedules_app.command("next")
def next_(
    schedule_id: ScheduleId,
    count: Annotated[int, typer.Option("-n", "--count", min=1, max=1000, help="how many fire times")] = 10,
    redis_url: RedisUrl = None,
    prefix: Prefix = None,
    as_json: AsJson = False,
) -> None:
    """The next fire times, in UTC and in the schedule's timezone."""
    from tickr.scheduler.manager import Schedules

    runs = _run(_app(redis_url, prefix), lambda a: Schedules(a).next_runs(schedule_id, count))
    if as_json:
        _json([{"utc": utc.isoformat(), "local": local.isoformat()} for utc, local in runs])
        return
    table = Table("#", "UTC", "local")
    for i, (utc, local) in enumerate(runs, 1):
        table.add_row(str(i), utc.isoformat(), local.isoformat())
    Console().print(table)


@schedules_app.command()
def history(
    schedule_id: ScheduleId,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 20,
    cursor: Annotated[str | None, typer.Option("--cursor", help="next_cursor of the previous page")] = None,
    redis_url: RedisUrl = None,
    prefix: Prefix = None,
    as_json: AsJson = False,
) -> None:
    """Recent runs, newest first, with each job's outcome."""
    from tickr.scheduler.manager import Schedules

    page = _run(_app(redis_url, prefix), lambda a: Schedules(a).history(schedule_id, limit=limit, cursor=cursor))
    if as_json:
        _json({"items": [e.to_dict() for e in page.items], "next_cursor": page.next_cursor})
        return
    table = Table("fire time (UTC)", "job id", "outcome", "attempt", "duration ms", "error")
    for e in page.items:
        error = f"{e.error['type']}: {e.error['message']}" if e.error else ""
        table.add_row(_when(e.fire_time), e.job_id, e.outcome, _opt(e.attempt), _opt(e.duration_ms), error)
    Console().print(table)
    if page.next_cursor:
        typer.echo(f"more: --cursor {page.next_cursor}")


def _state(s: Schedule) -> str:
    return "deleted" if s.deleted else "active" if s.is_active else "paused"


def _when(ms: int | None) -> str:
    return "-" if ms is None else datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def _opt(value: Any) -> str:
    return "" if value is None else str(value)


def _json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


def _done(verb: str, schedule: Schedule, as_json: bool) -> None:
    if as_json:
        _json(schedule.to_dict())
    else:
        typer.echo(f"{verb} {schedule.id} ({_state(schedule)})")


def _print_schedule(s: Schedule, as_json: bool) -> None:
    if as_json:
        _json(s.to_dict())
        return
    table = Table("field", "value", show_header=False)
    rows = {
        "id": s.id,
        "name": s.name or "",
        "state": _state(s),
        "cron": s.cron,
        "timezone": s.timezone,
        "job": json.dumps(s.template.to_dict()),
        "misfire": f"{s.misfire.value} (max catch-up {s.max_catch_up})",
        "overlap": "allowed" if s.overlap else "skip while the previous run is unfinished",
        "next run": _when(s.next_run_at) if s.is_active and not s.deleted else "-",
        "last run": f"{_when(s.last_run_at)} job {s.last_job_id or '-'}",
        "counters": f"fired {s.fired}, misfired {s.misfired}, skipped (overlap) {s.skipped_overlap}",
        "created": _when(s.created_at),
        "updated": _when(s.updated_at),
        "deleted": _when(s.deleted_at),
    }
    for key, value in rows.items():
        table.add_row(key, value)
    Console().print(table)
