"""Job routes: submit (one, a batch, the ``/tasks`` alias), list, read, change, cancel, retry."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response

from tickr.api.deps import InspectorDep, TickrDep
from tickr.api.models import QUEUE_PATTERN, TYPE_PATTERN, BatchIn, JobIn, JobPatch
from tickr.api.submission import enqueue_batch, enqueue_one, now_ms
from tickr.api.views import BatchOut, JobListOut, JobOut, problem_responses
from tickr.core.errors import ValidationError
from tickr.core.factory import check_payload
from tickr.core.job import JobState
from tickr.store.inspect import MAX_PAGE

router = APIRouter(tags=["jobs"])
EXISTING: dict[int | str, dict[str, Any]] = {
    200: {"model": JobOut, "description": "a job with this idempotency key exists already"}
}
legacy = APIRouter(tags=["compat"])

JobId = Annotated[str, Path(min_length=1, max_length=128, description="the job's id")]
QueueHint = Annotated[
    str | None, Query(pattern=QUEUE_PATTERN, description="the job's queue, if known (saves a lookup)")
]


async def _submit(spec: JobIn, request: Request, response: Response, tickr: TickrDep) -> JobOut:
    job, created = await enqueue_one(tickr, spec)
    response.status_code = 201 if created else 200
    response.headers["Location"] = str(request.url_for("get_job", job_id=job.id))
    return JobOut.of(job)


@router.post(
    "/jobs",
    status_code=201,
    responses=EXISTING | problem_responses(409, 413, 422),
)
async def create_job(spec: JobIn, request: Request, response: Response, tickr: TickrDep) -> JobOut:
    """Enqueue one job. 201 with the new job; 200 with the existing one for a known idempotency key."""
    return await _submit(spec, request, response, tickr)


@legacy.post(
    "/tasks",
    status_code=201,
    responses=EXISTING | problem_responses(409, 413, 422),
)
async def create_task(spec: JobIn, request: Request, response: Response, tickr: TickrDep) -> JobOut:
    """Alias of ``POST /api/v1/jobs``."""
    return await _submit(spec, request, response, tickr)


@router.post("/jobs/batch", status_code=201, responses=problem_responses(413, 422))
async def create_jobs(batch: BatchIn, tickr: TickrDep) -> BatchOut:
    """Enqueue up to 1,000 jobs in one round trip. The whole batch is validated first."""
    jobs, created = await enqueue_batch(tickr, batch.jobs)
    return BatchOut(jobs=[JobOut.of(job) for job in jobs], created=created)


@router.get("/jobs", responses=problem_responses(422))
async def list_jobs(
    inspector: InspectorDep,
    queue: Annotated[str | None, Query(pattern=QUEUE_PATTERN)] = None,
    status: JobState | None = None,
    type: Annotated[str | None, Query(pattern=TYPE_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=4096, description="`next_cursor` of the previous page")] = None,
) -> JobListOut:
    """Jobs by queue, status and type; cursor paging.

    Queues in name order; within a queue: active (latest lease deadline first), queued (critical
    first, most recently enqueued first), scheduled (latest due first), dead and finished (most
    recent first). A page may hold fewer than ``limit`` jobs when filters drop many: follow
    ``next_cursor`` until it is null.
    """
    page = await inspector.list_jobs(queue=queue, status=status, job_type=type, limit=limit, cursor=cursor)
    return JobListOut(jobs=[JobOut.of(job) for job in page.jobs], next_cursor=page.next_cursor)


@router.get("/jobs/{job_id}", responses=problem_responses(404))
async def get_job(job_id: JobId, inspector: InspectorDep, queue: QueueHint = None) -> JobOut:
    """A job: state, attempt, last error with traceback, result, timestamps."""
    return JobOut.of(await inspector.get_job(job_id, queue))


@router.patch("/jobs/{job_id}", responses=problem_responses(404, 409, 413, 422))
async def update_job(job_id: JobId, patch: JobPatch, inspector: InspectorDep, queue: QueueHint = None) -> JobOut:
    """Change priority, due time or payload of a job that has not started (409 once it has)."""
    queue = await inspector.locate(job_id, queue)
    due_ms: int | None = None
    if patch.delay is not None:
        due_ms = now_ms() + int(patch.delay * 1000) if patch.delay > 0 else 0
    elif patch.run_at is not None:
        due_ms = int(patch.run_at.timestamp() * 1000)
    if patch.payload is not None:
        try:
            check_payload(patch.payload)
        except TypeError as exc:
            raise ValidationError(str(exc), {"payload": str(exc)}) from None
    if patch.priority is not None or due_ms is not None or patch.payload is not None:
        await inspector.update(job_id, queue=queue, priority=patch.priority, due_ms=due_ms, payload=patch.payload)
    return JobOut.of(await inspector.get_job(job_id, queue))


async def _cancel(job_id: str, inspector: InspectorDep, queue: str | None) -> JobOut:
    queue = await inspector.locate(job_id, queue)
    await inspector.cancel(job_id, queue)
    return JobOut.of(await inspector.get_job(job_id, queue))


@router.delete("/jobs/{job_id}", responses=problem_responses(404, 409))
async def delete_job(job_id: JobId, inspector: InspectorDep, queue: QueueHint = None) -> JobOut:
    """Cancel a job that has not started (409 once it has). Same as ``POST .../cancel``."""
    return await _cancel(job_id, inspector, queue)


@router.post("/jobs/{job_id}/cancel", responses=problem_responses(404, 409))
async def cancel_job(job_id: JobId, inspector: InspectorDep, queue: QueueHint = None) -> JobOut:
    """Cancel a job that has not started (409 once it has)."""
    return await _cancel(job_id, inspector, queue)


@router.post("/jobs/{job_id}/retry", responses=problem_responses(404, 409))
async def retry_job(job_id: JobId, inspector: InspectorDep, queue: QueueHint = None) -> JobOut:
    """Run a dead, lost or cancelled job again, with fresh attempts (409 in any other state)."""
    queue = await inspector.locate(job_id, queue)
    await inspector.replay(job_id, queue)
    return JobOut.of(await inspector.get_job(job_id, queue))
