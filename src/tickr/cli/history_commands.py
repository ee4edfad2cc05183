"""``tickr history JOB_ID`` (a job's attempts, or a recurring job's runs), ``tickr history`` (the sink) and the SQL
side of ``tickr jobs list``.

Runs come from the SQL history where Redis has forgotten them, as in ``GET /api/v1/jobs/{id}/history``.
``--json`` prints ``{"items": [...], "next_cursor": ...}`` like every listing. Exit codes: 0 success,
1 unknown job or a database/Redis that cannot be reached, 2 bad input.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from tickr.app import App
from tickr.cli.common import (
    JsonOpt,
    RedisOpt,
    fail_usage,
    load_settings,
    require_redis,
    run_async,
    run_with_app,
    try_uvloop,
)
from tickr.cli.ops import _print_json, _table, _when
from tickr.config import Settings
from tickr.core.errors import JobNotFound, ValidationError
from tickr.history.database import HistoryDB
from tickr.history.queries import HistoryJobPage, HistoryQueries, parse_time, recurring_runs
from tickr.scheduler.manager import Schedules

T = TypeVar("T")
ERROR_CHARS = 80
WIDE_COLUMNS = 140  # from this width on, every column


def history_queries(settings: Settings) -> HistoryQueries:
    if not settings.history:
        raise fail_usage("the SQL history is off (TICKR_HISTORY=false)")
    try:
        return HistoryQueries(HistoryDB.from_settings(settings))
    except ValueError as exc:  # an unsupported TICKR_DATABASE_URL
        raise fail_usage(str(exc)) from None


def time_option(value: str | None, option: str, now_ms: int) -> int | None:
    """``--since``/``--until`` as epoch ms; bad input is a usage error naming the option."""
    if value is None:
        return None
    try:
        return parse_time(value, option.removeprefix("--"), now_ms)
    except ValidationError as exc:
        raise fail_usage(f"{option} {value!r}: {next(iter(exc.errors.values()))}") from None


def list_from_history(
    *,
    queue: str | None,
    status: str | None,
    job_type: str | None,
    schedule_id: str | None,
    worker: str | None,
    since: str | None,
    until: str | None,
    error: str | None,
    limit: int,
    cursor: str | None,
) -> HistoryJobPage:
    """``tickr jobs list`` from the SQL history (no Redis needed)."""
    now = int(time.time() * 1000)
    since_ms, until_ms = time_option(since, "--since", now), time_option(until, "--until", now)
    queries = history_queries(load_settings())

    async def main() -> HistoryJobPage:
        try:
            return await queries.list_jobs(
                queue=queue,
                status=status,
                type=job_type,
                schedule_id=schedule_id,
                worker=worker,
                since_ms=since_ms,
                until_ms=until_ms,
                error_contains=error,
                limit=limit,
                cursor=cursor,
            )
        finally:
            await queries.close()

    return run_async(main)


async def _runs(app: App, queries: HistoryQueries, job_id: str, limit: int, cursor: str | None) -> dict[str, Any]:
    """``{"kind", "items", "next_cursor"}``: the same runs as ``GET /api/v1/jobs/{id}/history``."""
    schedules = Schedules(app)
    if await schedules.get(job_id) is not None:
        page = await recurring_runs(schedules, queries, job_id, limit=limit, cursor=cursor)
        items = [entry.to_dict() for entry in page.items]
        return {"kind": "recurring", "items": items, "next_cursor": page.next_cursor}
    runs = await queries.runs(job_id, limit=limit, cursor=cursor)
    if runs.runs or cursor is not None:
        return {"kind": "one_off", "items": [r.to_dict() for r in runs.runs], "next_cursor": runs.next_cursor}
    try:
        job = await app.get_job(job_id)
    except JobNotFound:
        recorded = await queries.get_job(job_id)
        if recorded is None:
            raise
        job = recorded
    error = {"type": job.last_error.type, "message": job.last_error.message} if job.last_error else None
    duration = job.finished_at - job.started_at if job.finished_at and job.started_at else None
    single = {
        "job_id": job.id,
        "queue": job.queue,
        "attempt": job.attempt,
        "outcome": job.status.value,
        "worker": job.worker,
        "fire_time": job.scheduled_for or job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "duration_ms": duration,
        "lateness_ms": None,
        "error": error,
    }
    return {"kind": "one_off", "items": [single], "next_cursor": None}


def _with_history(settings: Settings, action: Callable[[App, HistoryQueries], Awaitable[T]]) -> T:
    queries = history_queries(settings)

    async def run(app: App) -> T:
        try:
            return await action(app, queries)
        finally:
            await queries.close()

    return run_with_app(settings, run)


def history(
    job_id: Annotated[
        str | None, typer.Argument(metavar="[JOB_ID]", help="a job's id, or a recurring job's; none: run the sink")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500)] = 20,
    cursor: Annotated[str | None, typer.Option("--cursor", help="`next_cursor` of the previous page")] = None,
    redis_url: RedisOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The runs of a job (its attempts) or of a recurring job (its occurrences), newest first.

    Without JOB_ID: run the history sink (event streams to SQL) until SIGINT/SIGTERM; run one or more
    replicas beside `tickr api` in production (`tickr up` runs one itself).
    """
    if job_id is None:
        run_sink(redis_url)
        return
    body = _with_history(load_settings(redis_url=redis_url), lambda app, q: _runs(app, q, job_id, limit, cursor))
    if as_json:
        _print_json({"items": body["items"], "next_cursor": body["next_cursor"]})
        return
    recurring = body["kind"] == "recurring"
    console = Console()
    wide = console.width >= WIDE_COLUMNS
    table = _table(f"{len(body['items'])} runs of {'recurring job' if recurring else 'job'} {job_id}")
    # At 80 columns: (job,) try, outcome, fire time or started, worker and error; wide: every column.
    columns = ["try", "outcome", "fire time" if recurring else "started"]
    if wide:
        columns = ["try", "outcome", "fire time" if recurring else "due", "started", "took", "late"]
    if recurring:
        table.add_column("job", no_wrap=True, min_width=36)
    for column in columns:
        table.add_column(column, no_wrap=True, justify="right" if column in ("try", "took", "late") else "left")
    if wide or not recurring:
        table.add_column("worker", overflow="fold", max_width=24)
    table.add_column("error", overflow="fold", min_width=12, max_width=60)
    for item in body["items"]:
        error = item.get("error")
        text = f"{error['type']}: {error['message']}".strip().splitlines()[0][:ERROR_CHARS] if error else ""
        values = {
            "try": "" if item.get("attempt") is None else str(item["attempt"]),
            "outcome": item["outcome"],
            "fire time": _when(item.get("fire_time")),
            "due": _when(item.get("fire_time")),
            "started": _when(item.get("started_at")),
            "took": _ms(item.get("duration_ms")),
            "late": _ms(item.get("lateness_ms")),
        }
        cells = [values[column] for column in columns]
        if wide or not recurring:
            cells.append(item.get("worker") or "")
        table.add_row(*([item["job_id"]] if recurring else []), *cells, text)
    console.print(table)
    if body["next_cursor"]:
        typer.echo(f"more: --cursor {body['next_cursor']}")


def run_sink(redis_url: str | None) -> None:
    from tickr.runtime.logging import configure_logging
    from tickr.runtime.services import run_history

    settings = require_redis(load_settings(redis_url=redis_url))
    if not settings.history:
        raise fail_usage("the SQL history is off (TICKR_HISTORY=false): there is nothing to sink")
    configure_logging(settings.log_level, settings.log_format)
    try_uvloop()
    run_async(lambda: run_history(App(settings=settings)))


def _ms(value: int | None) -> str:
    if value is None:
        return "-"
    return f"{value} ms" if value < 10_000 else f"{value / 1000:.1f} s"


def register(cli: typer.Typer) -> None:
    """Add ``tickr history`` to the ``tickr`` CLI."""
    cli.command()(history)
