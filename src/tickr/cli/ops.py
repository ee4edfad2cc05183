"""Operations from the shell: enqueue, jobs, queues, dlq, workers. Tables for people, ``--json`` for scripts.

``--json`` has one shape per kind: a listing is ``{"items": [...], "next_cursor": ...}`` (null at the end, and
for listings that are not paged), a job is the job's ``to_dict()`` (also after cancel and replay).
Tables fit the terminal: at 80 columns a job listing shows id, type, status, attempt and error; from
140 columns on also queue, priority and created.

Exit codes: 0 success, 1 a failed operation (unknown job, wrong state, Redis down), 2 bad usage.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import orjson
import typer
from rich import box
from rich.console import Console
from rich.table import Table

from tickr.app import App
from tickr.cli.common import EXIT_FAILED, EXIT_USAGE, JsonOpt, RedisOpt, fail, load_settings, run_with_app
from tickr.core.job import Job

T = TypeVar("T")

WIDE_COLUMNS = 140  # from this width on, job listings show every column
ERROR_CHARS = 120

jobs_cli = typer.Typer(help="Inspect and manage jobs.", no_args_is_help=True)
dlq_cli = typer.Typer(help="The dead-letter queue.", no_args_is_help=True)


def _run(redis_url: str | None, action: Callable[[App], Awaitable[T]]) -> T:
    return run_with_app(load_settings(redis_url=redis_url), action)


def _print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def _print_items(items: list[Any], next_cursor: str | None = None) -> None:
    """A listing, in the one shape every ``--json`` listing has."""
    _print_json({"items": items, "next_cursor": next_cursor})


def _when(ms: int | None) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S") if ms else "-"


def _table(title: str | None = None, *, show_header: bool = True) -> Table:
    """A borderless table: no column separators to pay for, so more of 80 columns goes to the values."""
    return Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        show_header=show_header,
    )


def _jobs_table(jobs: list[Job], title: str) -> None:
    console = Console()
    wide = console.width >= WIDE_COLUMNS
    table = _table(title)
    table.add_column("id", no_wrap=True, min_width=36)  # whole, so it can be copied
    table.add_column("type", overflow="fold", max_width=24)
    if wide:
        table.add_column("queue", overflow="fold", max_width=24)
        table.add_column("priority", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("try", justify="right", no_wrap=True)
    if wide:
        table.add_column("created", no_wrap=True)
    table.add_column("error", overflow="fold", min_width=12, max_width=60)
    for job in jobs:
        error = job.last_error.message.strip().splitlines()[0][:ERROR_CHARS] if job.last_error else ""
        middle = [job.queue, job.priority] if wide else []
        created = [_when(job.created_at)] if wide else []
        table.add_row(job.id, job.type, *middle, job.status, str(job.attempt), *created, error)
    console.print(table)


def enqueue(
    job_type: Annotated[str, typer.Argument(metavar="TYPE", help="job type (handler name)")],
    payload: Annotated[str, typer.Option("--payload", help="JSON object")] = "{}",
    queue: Annotated[str, typer.Option("--queue", "-q")] = "default",
    priority: Annotated[str, typer.Option("--priority")] = "default",
    delay: Annotated[float | None, typer.Option("--delay", help="seconds")] = None,
    idempotency_key: Annotated[str | None, typer.Option("--idempotency-key")] = None,
    max_retries: Annotated[int | None, typer.Option("--max-retries")] = None,
    redis_url: RedisOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Enqueue one job."""
    try:
        body = json.loads(payload)
    except json.JSONDecodeError as exc:
        raise fail(f"--payload is not JSON: {exc}", EXIT_USAGE) from None
    options: dict[str, Any] = {
        "queue": queue,
        "priority": priority,
        "delay": delay,
        "idempotency_key": idempotency_key,
        "max_retries": max_retries,
    }

    async def action(app: App) -> Job:
        if not await app.knows_type(job_type):  # neither a built-in nor registered by any worker
            typer.echo(f"warning: no worker has registered type {job_type!r} (yet)", err=True)
        job_id = await app.enqueue(job_type, body, **{k: v for k, v in options.items() if v is not None})
        return await app.get_job(job_id)

    job = _run(redis_url, action)
    if as_json:
        _print_json(job.to_dict())
    else:
        typer.echo(f"{job.id} {job.status}")


@jobs_cli.command("list")
def jobs_list(
    queue: Annotated[str | None, typer.Option("--queue", "-q")] = None,
    status: Annotated[str | None, typer.Option("--status")] = None,
    job_type: Annotated[str | None, typer.Option("--type")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500)] = 50,
    cursor: Annotated[str | None, typer.Option("--cursor")] = None,
    source: Annotated[
        str | None,
        typer.Option(
            "--source", help="live (Redis) or history (SQL); default history with a history-only filter, else live"
        ),
    ] = None,
    schedule_id: Annotated[str | None, typer.Option("--schedule", help="jobs a recurring job enqueued (SQL)")] = None,
    worker: Annotated[str | None, typer.Option("--worker", help="jobs last run by this worker (SQL)")] = None,
    since: Annotated[str | None, typer.Option("--since", help="created since: 1h, 30m, 7d or RFC 3339 (SQL)")] = None,
    until: Annotated[str | None, typer.Option("--until", help="created before: 1h, 30m, 7d or RFC 3339 (SQL)")] = None,
    error: Annotated[str | None, typer.Option("--error", help="text in the error type or message (SQL)")] = None,
    redis_url: RedisOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List jobs, filtered by queue, status and type; from the SQL history with --source history or any of
    --schedule, --worker, --since, --until, --error (jobs that left Redis included)."""
    history_only = {"--schedule": schedule_id, "--worker": worker, "--since": since, "--until": until, "--error": error}
    given = [name for name, value in history_only.items() if value is not None]
    if source not in (None, "live", "history"):
        raise fail("--source must be live or history", EXIT_USAGE)
    if source == "live" and given:
        raise fail(f"{', '.join(given)}: only with --source history", EXIT_USAGE)
    if source == "history" or given:
        from tickr.cli.history_commands import list_from_history

        page: Any = list_from_history(
            queue=queue,
            status=status,
            job_type=job_type,
            schedule_id=schedule_id,
            worker=worker,
            since=since,
            until=until,
            error=error,
            limit=limit,
            cursor=cursor,
        )
    else:
        page = _run(
            redis_url,
            lambda app: app.inspector.list_jobs(
                queue=queue, status=status, job_type=job_type, limit=limit, cursor=cursor
            ),
        )
    if as_json:
        _print_items([j.to_dict() for j in page.jobs], page.next_cursor)
        return
    _jobs_table(page.jobs, f"{len(page.jobs)} jobs")
    if page.next_cursor:
        typer.echo(f"more: --cursor {page.next_cursor}")


@jobs_cli.command("show")
def jobs_show(job_id: str, redis_url: RedisOpt = None, as_json: JsonOpt = False) -> None:
    """Show one job, with its last error."""
    job = _run(redis_url, lambda app: app.get_job(job_id))
    if as_json:
        _print_json(job.to_dict())
        return
    table = _table(show_header=False)
    table.add_column("field", no_wrap=True, style="bold")
    table.add_column("value", overflow="fold")
    for key, value in job.to_dict().items():
        if key in ("created_at", "scheduled_for", "started_at", "finished_at"):
            value = _when(value)
        elif key == "last_error" and value:
            value = f"{value['type']}: {value['message']}\n{value['traceback']}"
        table.add_row(key, value if isinstance(value, str) else json.dumps(value))
    Console().print(table)


def _state_change(verb: str, call: Callable[[App, str], Awaitable[str]]) -> Callable[..., None]:
    def command(job_id: str, redis_url: RedisOpt = None, as_json: JsonOpt = False) -> None:
        async def action(app: App) -> tuple[str, Job | None]:
            status = await call(app, job_id)
            return status, (await app.get_job(job_id) if as_json else None)

        status, job = _run(redis_url, action)
        if job is not None:
            _print_json(job.to_dict())
        else:
            typer.echo(f"{job_id} {status}")

    command.__doc__ = f"{verb.capitalize()} a job."
    return command


jobs_cli.command("cancel")(_state_change("cancel (if not started)", lambda app, job_id: app.cancel(job_id)))
_replay = _state_change("replay (a dead, lost or cancelled)", lambda app, job_id: app.replay(job_id))
jobs_cli.command("replay")(_replay)
jobs_cli.command("retry", help="Alias of `tickr jobs replay`.")(_replay)


def queues(redis_url: RedisOpt = None, as_json: JsonOpt = False) -> None:
    """Queues with their counts by state."""

    async def action(app: App) -> list[Any]:
        inspector = app.store.queues
        return await inspector.stats(await inspector.names())

    stats = _run(redis_url, action)
    if as_json:
        _print_items(
            [
                {
                    "name": s.name,
                    "paused": s.paused,
                    "queued": s.queued,
                    "scheduled": s.scheduled,
                    "retrying": s.retrying,
                    "active": s.active,
                    "dead": s.dead,
                    "done": s.done,
                    "throughput_per_second": s.throughput_per_second,
                }
                for s in stats
            ]
        )
        return
    table = _table("queues (jobs/s: finished per second over the last minute)")
    table.add_column("queue", overflow="fold", max_width=32)
    table.add_column("paused", no_wrap=True)
    for column in ("queued", "scheduled", "active", "dead", "done", "jobs/s"):
        table.add_column(column, justify="right", no_wrap=True)
    for s in stats:
        table.add_row(
            s.name,
            "yes" if s.paused else "",
            str(s.queued),
            str(s.scheduled),
            str(s.active),
            str(s.dead),
            str(s.done),
            f"{s.throughput_per_second:.1f}",
        )
    Console().print(table)


@dlq_cli.command("list")
def dlq_list(
    queue: Annotated[str, typer.Option("--queue", "-q")] = "default",
    limit: Annotated[int, typer.Option("--limit", min=1, max=500)] = 50,
    cursor: Annotated[str | None, typer.Option("--cursor")] = None,
    redis_url: RedisOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Dead jobs of a queue, newest first."""
    page = _run(redis_url, lambda app: app.inspector.list_jobs(queue=queue, status="dead", limit=limit, cursor=cursor))
    if as_json:
        _print_items([j.to_dict() for j in page.jobs], page.next_cursor)
        return
    _jobs_table(page.jobs, f"{len(page.jobs)} dead jobs in {queue}")
    if page.next_cursor:
        typer.echo(f"more: --cursor {page.next_cursor}")


@dlq_cli.command("replay")
def dlq_replay(
    queue: Annotated[str, typer.Option("--queue", "-q")] = "default",
    job_type: Annotated[str | None, typer.Option("--type", help="only jobs of this type")] = None,
    ids: Annotated[list[str] | None, typer.Argument(help="job ids (all when omitted)")] = None,
    redis_url: RedisOpt = None,
) -> None:
    """Bring dead jobs back to their queue with fresh attempts."""
    count = _run(redis_url, lambda app: app.store.queues.dead_replay(queue, job_type=job_type, ids=ids))
    typer.echo(f"replayed {count} jobs")


@dlq_cli.command("purge")
def dlq_purge(
    queue: Annotated[str, typer.Option("--queue", "-q")] = "default",
    job_type: Annotated[str | None, typer.Option("--type")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="do not ask")] = False,
    redis_url: RedisOpt = None,
) -> None:
    """Delete dead jobs for good."""
    if not yes and not typer.confirm(f"delete the dead jobs of {queue}?"):
        raise typer.Exit(EXIT_FAILED)
    count = _run(redis_url, lambda app: app.store.queues.dead_purge(queue, job_type=job_type))
    typer.echo(f"purged {count} jobs")


def workers(redis_url: RedisOpt = None, as_json: JsonOpt = False) -> None:
    """Live workers, from their heartbeats."""
    found = _run(redis_url, lambda app: app.store.workers.live())
    if as_json:
        _print_items(
            [
                {
                    "id": w.id,
                    "host": w.host,
                    "pid": w.pid,
                    "queues": w.queues,
                    "concurrency": w.concurrency,
                    "in_flight": w.in_flight,
                    "last_heartbeat_ms": w.last_heartbeat_ms,
                }
                for w in found
            ]
        )
        return
    table = _table("workers")
    table.add_column("id", overflow="fold", max_width=40)
    table.add_column("host", overflow="fold", max_width=24)
    table.add_column("pid", justify="right", no_wrap=True)
    table.add_column("queues", overflow="fold", max_width=30)
    table.add_column("slots", justify="right", no_wrap=True)
    table.add_column("busy", justify="right", no_wrap=True)
    table.add_column("last heartbeat", no_wrap=True)
    for w in found:
        table.add_row(
            w.id,
            w.host,
            str(w.pid),
            ",".join(w.queues),
            str(w.concurrency),
            str(w.in_flight),
            _when(w.last_heartbeat_ms),
        )
    Console().print(table)


def register(cli: typer.Typer) -> None:
    """Add the operations commands to the ``tickr`` CLI."""
    cli.command()(enqueue)
    cli.add_typer(jobs_cli, name="jobs")
    cli.command()(queues)
    cli.add_typer(dlq_cli, name="dlq")
    cli.command()(workers)
