"""Recurring-job routes: the next fire times, the run history, and the list of recurring jobs.

Creating, reading, changing and deleting a recurring job go through ``/jobs`` (``routes/jobs.py``). The
history reads the SQL history where Redis has forgotten: a one-off job's attempts, and a recurring job's
runs whose jobs expired from Redis or that are older than its ``fired`` list.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query

from tickr.api.deps import HistoryDep, InspectorDep, SchedulesDep
from tickr.api.problems import Problem
from tickr.api.recurring import one_off_run
from tickr.api.views import HistoryOut, NextRunsOut, RecurringJobListOut, RecurringJobOut, RunOut, problem_responses
from tickr.core.errors import JobNotFound, ValidationError
from tickr.history.queries import REDIS_CURSOR, HistoryQueries, recurring_runs
from tickr.scheduler.manager import Schedules
from tickr.store.job_admin import MAX_PAGE, JobAdmin

router = APIRouter(tags=["recurring jobs"])

JobId = Annotated[str, Path(min_length=1, max_length=128, description="the job's id")]
MAX_NEXT_RUNS = 100
CURSOR_PATTERN = r"^[0-9]{1,18}$"
Cursor = Annotated[str | None, Query(pattern=CURSOR_PATTERN, description="`next_cursor` of the previous page")]
HistoryCursor = Annotated[
    str | None, Query(max_length=512, pattern=r"^[A-Za-z0-9_\-]+$", description="`next_cursor` of the previous page")
]


async def _next_runs(schedules: Schedules, job_id: str, count: int) -> list[tuple[datetime, datetime]]:
    """Up to ``count`` next fire times: fewer when the later ones would fall past the year 9999."""
    while True:
        try:
            return await schedules.next_runs(job_id, count)
        except OverflowError:
            if count == 1:
                return []
            count //= 2


@router.get("/jobs/{job_id}/schedule", responses=problem_responses(404, 422))
async def get_next_runs(
    job_id: JobId,
    schedules: SchedulesDep,
    inspector: InspectorDep,
    count: Annotated[int, Query(ge=1, le=MAX_NEXT_RUNS, description="how many fire times")] = 10,
) -> NextRunsOut:
    """The next ``count`` fire times of a recurring job, in UTC and in its timezone.

    For a paused or deleted one, the times it would fire at if resumed now. 404 for an unknown id or a
    one-off job (which has no schedule).
    """
    schedule = await schedules.get(job_id)
    if schedule is None:
        raise await _not_recurring(job_id, inspector)
    return NextRunsOut.of(schedule, await _next_runs(schedules, job_id, count))


async def _not_recurring(job_id: str, inspector: JobAdmin) -> Exception:
    """The 404 for ``job_id``, which is not a recurring job: a one-off job, or nothing at all."""
    try:
        await inspector.locate(job_id)
    except JobNotFound as exc:
        return exc
    return Problem(
        404, f"job {job_id!r} is a one-off job, not a recurring one: it has no schedule", slug="not-recurring"
    )


@router.get("/jobs/{job_id}/history", responses=problem_responses(404, 422))
async def get_history(
    job_id: JobId,
    schedules: SchedulesDep,
    inspector: InspectorDep,
    history: HistoryDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
    cursor: HistoryCursor = None,
) -> HistoryOut:
    """The runs of a job, newest first; cursor paging.

    A recurring job: one run per occurrence with its job's outcome, attempt, duration, lateness and error.
    The newest come from Redis (its ``fired`` list); those whose job expired from Redis, and those older
    than Redis remembers, from the SQL history, with their real outcome (``expired`` only when neither
    has the job).

    A one-off job: one run per attempt (``outcome`` running, succeeded, failed, lost or released, with the
    worker), from the SQL history; before the history has any attempt, its single run as Redis tells it.
    503 when the history database is needed and unavailable.
    """
    if await schedules.get(job_id) is None:
        return await _one_off_history(job_id, inspector, history, limit, cursor)
    if history is None:
        if cursor is not None and not REDIS_CURSOR.fullmatch(cursor):
            raise ValidationError("bad cursor", {"cursor": "not a cursor returned by this listing"})
        page = await schedules.history(job_id, limit=limit, cursor=cursor)
        entries, next_cursor = page.items, page.next_cursor
    else:
        merged = await recurring_runs(schedules, history, job_id, limit=limit, cursor=cursor)
        entries, next_cursor = merged.items, merged.next_cursor
    runs = [RunOut.of(entry.to_dict()) for entry in entries]
    return HistoryOut(id=job_id, kind="recurring", runs=runs, next_cursor=next_cursor)


async def _one_off_history(
    job_id: str, inspector: JobAdmin, history: HistoryQueries | None, limit: int, cursor: str | None
) -> HistoryOut:
    if history is not None:
        page = await history.runs(job_id, limit=limit, cursor=cursor)
        if page.runs or cursor is not None:
            runs = [RunOut.of(run.to_dict()) for run in page.runs]
            return HistoryOut(id=job_id, kind="one_off", runs=runs, next_cursor=page.next_cursor)
    try:
        job = await inspector.get_job(job_id)
    except JobNotFound:
        recorded = await history.get_job(job_id) if history is not None else None
        if recorded is None:
            raise
        job = recorded
    runs = [one_off_run(job)] if cursor is None else []
    return HistoryOut(id=job.id, kind="one_off", runs=runs, next_cursor=None)


@router.get("/schedules", responses=problem_responses(422))
async def list_schedules(
    schedules: SchedulesDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Cursor = None,
    include_deleted: Annotated[bool, Query(description="also list soft-deleted recurring jobs")] = False,
) -> RecurringJobListOut:
    """Recurring jobs, oldest first; cursor paging. Same views as ``GET /api/v1/jobs?kind=recurring``."""
    page = await schedules.list_schedules(limit=limit, cursor=cursor, include_deleted=include_deleted)
    return RecurringJobListOut(
        schedules=[RecurringJobOut.of(s) for s in page.items],
        next_cursor=page.next_cursor,
    )
