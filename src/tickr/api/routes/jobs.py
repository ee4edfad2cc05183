"""Job routes: submit (one, a batch, the ``/tasks`` alias), list, read, change, cancel, replay (alias ``retry``).

A body with ``cron`` makes a recurring job, and ``GET|PATCH|DELETE /jobs/{id}`` also address recurring
jobs (schedules): the id tells which. Their own routes (next runs, history) are in ``routes/recurring.py``.
Reads reach into the SQL history for jobs that have left Redis: ``GET /jobs/{id}`` falls back to it, and
``GET /jobs?source=history`` lists from it.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Path, Query, Request, Response

from tickr.api import recurring
from tickr.api.deps import HistoryDep, InspectorDep, SchedulesDep, TickrDep
from tickr.api.models import QUEUE_PATTERN, TYPE_PATTERN, BatchIn, JobIn, JobPatch
from tickr.api.problems import Problem
from tickr.api.submission import (
    HTTP_FIELDS,
    enqueue_batch,
    enqueue_one,
    http_job,
    invalid,
    now_ms,
    payload_errors,
    type_warnings,
)
from tickr.api.views import AnyJobOut, BatchOut, JobListOut, JobOut, RecurringJobOut, problem_responses
from tickr.core.errors import ConfigError, JobNotFound
from tickr.core.job import JobState, Priority
from tickr.core.schedule import Schedule
from tickr.history.queries import HistoryQueries, parse_time
from tickr.scheduler.manager import Schedules
from tickr.store.job_admin import MAX_PAGE, JobAdmin

router = APIRouter(tags=["jobs"])
EXISTING: dict[int | str, dict[str, Any]] = {
    200: {"model": JobOut, "description": "a job with this idempotency key exists already"}
}
legacy = APIRouter(tags=["compat"])

JobId = Annotated[str, Path(min_length=1, max_length=128, description="the job's id")]
QueueHint = Annotated[
    str | None,
    Query(pattern=QUEUE_PATTERN, description="the job's queue, if known (saves a lookup; one-off jobs only)"),
]
SCHEDULE_CURSOR = re.compile(r"[0-9]{1,18}")
# The JobPatch fields only a recurring job takes.
RECURRING_PATCH = tuple(
    name for name in JobPatch.model_fields if name not in {"priority", "delay", "run_at", "payload", *HTTP_FIELDS}
)
T = TypeVar("T")


class JobKind(StrEnum):
    ONE_OFF = "one_off"
    RECURRING = "recurring"


class Source(StrEnum):
    LIVE = "live"
    HISTORY = "history"


class Order(StrEnum):
    DESC = "desc"
    ASC = "asc"


TimeFilter = Annotated[
    str | None,
    Query(
        max_length=64,
        description="created at or after (`since`) / before (`until`): an RFC 3339 date-time with offset "
        "(`2026-01-02T03:04:05Z`) or a duration ago (`90s`, `30m`, `1h`, `7d`); history only",
    ),
]


def require_history(history: HistoryQueries | None) -> HistoryQueries:
    """The SQL history, or a 503 saying it is off."""
    if history is None:
        raise ConfigError("the SQL history is off (TICKR_HISTORY=false)")
    return history


async def find_schedule(schedules: Schedules, job_id: str, queue: str | None = None) -> Schedule | None:
    """The recurring job ``job_id``, or None when it is not one (a ``queue`` hint means a one-off job)."""
    return None if queue is not None else await schedules.get(job_id)


async def _submit(
    spec: JobIn, request: Request, response: Response, tickr: TickrDep, schedules: Schedules
) -> JobOut | RecurringJobOut:
    out: JobOut | RecurringJobOut
    if spec.cron is not None:
        out, created = RecurringJobOut.of(await recurring.create(schedules, spec)), True
    else:
        warnings = await type_warnings(tickr, [http_job(spec)[0]])
        job, created = await enqueue_one(tickr, spec)
        out = JobOut.of(job)
        out.warnings = warnings
    response.status_code = 201 if created else 200
    response.headers["Location"] = _job_url(request, out.id)
    return out


_JOB_URLS: dict[str, str] = {}  # base URL -> the job route's URL with a placeholder id


def _job_url(request: Request, job_id: str) -> str:
    """``url_for("get_job")`` of ``job_id``: the route is resolved once per base URL (it was 7% of a submit)."""
    base = str(request.base_url)
    template = _JOB_URLS.get(base)
    if template is None:
        if len(_JOB_URLS) > 64:  # a server answering under many host names: keep the cache small
            _JOB_URLS.clear()
        template = _JOB_URLS[base] = str(request.url_for("get_job", job_id="{job_id}"))
    return template.replace("%7Bjob_id%7D", job_id).replace("{job_id}", job_id)


@router.post(
    "/jobs",
    status_code=201,
    responses=EXISTING | problem_responses(409, 413, 422),
)
async def create_job(
    spec: JobIn, request: Request, response: Response, tickr: TickrDep, schedules: SchedulesDep
) -> AnyJobOut:
    """Enqueue one job. 201 with the new job; 200 with the existing one for a known idempotency key.

    With ``cron`` (or ``cronExpression``): create a recurring job; 201 with its view (``kind: recurring``).
    """
    return await _submit(spec, request, response, tickr, schedules)


@legacy.post(
    "/tasks",
    status_code=201,
    responses=EXISTING | problem_responses(409, 413, 422),
)
async def create_task(
    spec: JobIn, request: Request, response: Response, tickr: TickrDep, schedules: SchedulesDep
) -> AnyJobOut:
    """Alias of ``POST /api/v1/jobs``."""
    return await _submit(spec, request, response, tickr, schedules)


@router.post("/jobs/batch", status_code=201, responses=problem_responses(409, 413, 422, 503))
async def create_jobs(batch: BatchIn, tickr: TickrDep) -> BatchOut:
    """Enqueue up to 1,000 one-off jobs in one round trip.

    The whole batch is validated (and encoded) first: one bad job and nothing is written (422). Then each
    job is written in order: a reused idempotency key with a different request is a 409 and a store failure
    a 503, each listing the jobs that were created (``created: [{index, id}]``).
    """
    warnings = await type_warnings(tickr, [http_job(spec)[0] for spec in batch.jobs])
    jobs, created = await enqueue_batch(tickr, batch.jobs)
    return BatchOut(jobs=[JobOut.of(job) for job in jobs], created=created, warnings=warnings)


@router.get("/jobs", responses=problem_responses(422))
async def list_jobs(
    inspector: InspectorDep,
    schedules: SchedulesDep,
    history: HistoryDep,
    queue: Annotated[str | None, Query(pattern=QUEUE_PATTERN)] = None,
    status: JobState | None = None,
    type: Annotated[str | None, Query(pattern=TYPE_PATTERN)] = None,
    priority: Priority | None = None,
    kind: Annotated[JobKind, Query(description="`recurring` lists recurring jobs instead")] = JobKind.ONE_OFF,
    source: Annotated[
        Source | None,
        Query(
            description="`live`: the jobs in Redis now; `history`: every job the SQL history recorded. "
            "Default: `history` when a history-only filter is given, else `live`"
        ),
    ] = None,
    schedule_id: Annotated[
        str | None, Query(min_length=1, max_length=128, description="jobs a recurring job enqueued; history only")
    ] = None,
    worker: Annotated[
        str | None, Query(min_length=1, max_length=256, description="jobs last run by this worker; history only")
    ] = None,
    since: TimeFilter = None,
    until: TimeFilter = None,
    error: Annotated[
        str | None,
        Query(min_length=1, max_length=256, description="text in the error type or message (any case); history only"),
    ] = None,
    order: Annotated[
        Order | None,
        Query(description="`desc` (newest first, the default) or `asc` (oldest first); history only"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=4096, description="`next_cursor` of the previous page")] = None,
) -> JobListOut:
    """Jobs by queue, status, type and priority; cursor paging.

    ``source=live`` (Redis): queues in name order; within a queue: active (latest lease deadline first),
    queued (critical first, most recently enqueued first), scheduled (latest due first), dead and finished
    (most recent first). A page may hold fewer than ``limit`` jobs when filters drop many: follow
    ``next_cursor`` until it is null.

    ``source=history`` (SQL): every job recorded, those that left Redis included (a few seconds behind
    Redis), newest first by creation time then id (``order=asc``: oldest first), with the filters
    ``schedule_id``, ``worker``, ``since`` (inclusive), ``until`` (exclusive) and ``error`` besides queue,
    status, type and priority. Giving any of those (or ``order``) selects it by default. A cursor continues
    only a listing of its own order (422 else). Full pages until the last; 503 when the history database is
    unavailable.

    ``kind=recurring``: the recurring jobs that are not deleted, oldest first, filtered on their
    template's queue and type (``status`` and ``priority`` do not apply). ``GET /api/v1/schedules`` lists them too.
    """
    history_only = {
        "schedule_id": schedule_id,
        "worker": worker,
        "since": since,
        "until": until,
        "error": error,
        "order": order,
    }
    given = [name for name, value in history_only.items() if value is not None]
    if source is None:
        source = Source.HISTORY if given else Source.LIVE
    if kind is JobKind.RECURRING or source is Source.LIVE:
        reason = "not with kind=recurring" if kind is JobKind.RECURRING else "only with source=history"
        errors = {name: reason for name in given}
        if kind is JobKind.RECURRING and source is Source.HISTORY and not given:
            errors["source"] = "not with kind=recurring"
        if errors:
            raise invalid("listing", errors)
    if kind is JobKind.RECURRING:
        if priority is not None:
            raise invalid("listing", {"priority": "not with kind=recurring"})
        return await _list_recurring(schedules, queue, status, type, limit, cursor)
    if source is Source.HISTORY:
        now = now_ms()
        found = await require_history(history).list_jobs(
            queue=queue,
            status=status,
            type=type,
            schedule_id=schedule_id,
            worker=worker,
            since_ms=None if since is None else parse_time(since, "since", now),
            until_ms=None if until is None else parse_time(until, "until", now),
            error_contains=error,
            priority=priority,
            order=(order or Order.DESC).value,
            limit=limit,
            cursor=cursor,
        )
        return JobListOut(jobs=[JobOut.of(job) for job in found.jobs], next_cursor=found.next_cursor)
    page = await inspector.list_jobs(
        queue=queue, status=status, job_type=type, priority=priority, limit=limit, cursor=cursor
    )
    return JobListOut(jobs=[JobOut.of(job) for job in page.jobs], next_cursor=page.next_cursor)


async def _list_recurring(
    schedules: Schedules, queue: str | None, status: JobState | None, type: str | None, limit: int, cursor: str | None
) -> JobListOut:
    errors = {}
    if status is not None:
        errors["status"] = "not with kind=recurring"
    if cursor is not None and not SCHEDULE_CURSOR.fullmatch(cursor):
        errors["cursor"] = "not a cursor returned by this listing"
    if errors:
        raise invalid("listing", errors)
    page = await schedules.list_schedules(limit=limit, cursor=cursor)
    found: list[JobOut | RecurringJobOut] = [
        RecurringJobOut.of(s)
        for s in page.items
        if queue in (None, s.template.queue) and type in (None, s.template.type)
    ]
    return JobListOut(jobs=found, next_cursor=page.next_cursor)


@router.get("/jobs/{job_id}", responses=problem_responses(404))
async def get_job(
    job_id: JobId, inspector: InspectorDep, schedules: SchedulesDep, history: HistoryDep, queue: QueueHint = None
) -> AnyJobOut:
    """A job: state, attempt, last error with traceback, result, timestamps.

    A job that has left Redis is read from the SQL history (404 when neither has it; 503 when Redis has
    not and the history database is unavailable). A recurring job (``kind: recurring``): its cron,
    timezone, next run, state and job template.
    """
    schedule = await find_schedule(schedules, job_id, queue)
    if schedule is not None:
        return RecurringJobOut.of(schedule)
    try:
        return JobOut.of(await inspector.get_job(job_id, queue))
    except JobNotFound:
        recorded = await history.get_job(job_id) if history is not None else None
        if recorded is None or queue not in (None, recorded.queue):
            raise
    return JobOut.of(recorded)


@router.patch("/jobs/{job_id}", responses=problem_responses(404, 409, 413, 422))
async def update_job(
    job_id: JobId, patch: JobPatch, inspector: InspectorDep, schedules: SchedulesDep, queue: QueueHint = None
) -> AnyJobOut:
    """Change priority, due time or payload of a job that has not started (409 once it has).

    A recurring job: change its cron, timezone, payload, priority, other template fields and policies;
    ``isActive`` false pauses it, true resumes it (and brings a deleted one back).
    """
    schedule = await find_schedule(schedules, job_id, queue)
    if schedule is not None:
        return RecurringJobOut.of(await recurring.patch(schedules, schedule, patch))
    queue = await inspector.locate(job_id, queue)
    refused = sorted({*patch.given(RECURRING_PATCH), *(HTTP_FIELDS & patch.model_fields_set)})
    if refused:
        raise invalid("change", {patch.spelled(name): "only for a recurring job" for name in refused})
    due_ms: int | None = None
    if patch.delay is not None:
        due_ms = now_ms() + int(patch.delay * 1000) if patch.delay > 0 else 0
    elif patch.run_at is not None:
        due_ms = int(patch.run_at.timestamp() * 1000)
    if patch.payload is not None and (bad := payload_errors(patch.payload, from_fields=False)):
        raise invalid("change", bad)
    if patch.priority is not None or due_ms is not None or patch.payload is not None:
        await inspector.update(job_id, queue=queue, priority=patch.priority, due_ms=due_ms, payload=patch.payload)
    return JobOut.of(await inspector.get_job(job_id, queue))


async def _one_off(job_id: str, schedules: Schedules, action: Awaitable[T]) -> T:
    """``action`` on a one-off job; a 409 that says so when ``job_id`` is a recurring job instead."""
    try:
        return await action
    except JobNotFound:
        if await schedules.get(job_id) is None:
            raise
    raise Problem(
        409,
        f"job {job_id!r} is a recurring job: DELETE it, or PATCH isActive to pause or resume it",
        slug="recurring-job",
    )


async def _cancel(job_id: str, inspector: JobAdmin, queue: str | None) -> JobOut:
    queue = await inspector.locate(job_id, queue)
    await inspector.cancel(job_id, queue)
    return JobOut.of(await inspector.get_job(job_id, queue))


async def _replay(job_id: str, inspector: JobAdmin, queue: str | None) -> JobOut:
    queue = await inspector.locate(job_id, queue)
    await inspector.replay(job_id, queue)
    return JobOut.of(await inspector.get_job(job_id, queue))


@router.delete("/jobs/{job_id}", responses=problem_responses(404, 409))
async def delete_job(
    job_id: JobId, inspector: InspectorDep, schedules: SchedulesDep, queue: QueueHint = None
) -> AnyJobOut:
    """Cancel a job that has not started (409 once it has). Same as ``POST .../cancel``.

    A recurring job: soft delete. It stops firing and shows ``status: deleted``; its history stays,
    and PATCH ``isActive: true`` brings it back.
    """
    if await find_schedule(schedules, job_id, queue) is not None:
        return RecurringJobOut.of(await schedules.delete(job_id))
    return await _cancel(job_id, inspector, queue)


@router.post("/jobs/{job_id}/cancel", responses=problem_responses(404, 409))
async def cancel_job(
    job_id: JobId, inspector: InspectorDep, schedules: SchedulesDep, queue: QueueHint = None
) -> JobOut:
    """Cancel a job that has not started (409 once it has, or for a recurring job)."""
    return await _one_off(job_id, schedules, _cancel(job_id, inspector, queue))


@router.post("/jobs/{job_id}/replay", responses=problem_responses(404, 409))
@router.post("/jobs/{job_id}/retry", responses=problem_responses(404, 409), summary="Replay Job (alias)")
async def replay_job(
    job_id: JobId, inspector: InspectorDep, schedules: SchedulesDep, queue: QueueHint = None
) -> JobOut:
    """Run a dead, lost or cancelled job again, with fresh attempts (409 in any other state).

    ``POST .../retry`` is an alias of ``POST .../replay`` (the word other job systems use).
    """
    return await _one_off(job_id, schedules, _replay(job_id, inspector, queue))
