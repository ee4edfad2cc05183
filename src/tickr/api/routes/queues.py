"""Queue routes: counts and throughput, pause/resume, the dead-letter queue (list, replay, purge)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from tickr.api.deps import InspectorDep, QueuesDep
from tickr.api.models import QUEUE_PATTERN, TYPE_PATTERN, DeadReplayIn
from tickr.api.problems import Problem
from tickr.api.views import CountOut, JobListOut, JobOut, QueueListOut, QueueOut, QueueStatsOut, problem_responses
from tickr.core.job import JobState
from tickr.store.job_admin import MAX_PAGE
from tickr.store.queue_admin import QueueAdmin

router = APIRouter(tags=["queues"])
legacy = APIRouter(tags=["compat"])

QueueName = Annotated[str, Path(pattern=QUEUE_PATTERN, description="queue name")]
TypeFilter = Annotated[str | None, Query(pattern=TYPE_PATTERN, description="only jobs of this type")]


async def _one(queues: QueueAdmin, queue: str) -> QueueOut:
    return QueueOut.of((await queues.stats([queue]))[0])


@router.get("/queues")
async def list_queues(queues: QueuesDep) -> QueueListOut:
    """Every queue with its counts, counters, throughput and oldest waiting age."""
    return QueueListOut(queues=[QueueOut.of(stats) for stats in await queues.stats(await queues.names())])


@router.get("/queues/{queue}", responses=problem_responses(404, 422))
async def get_queue(queue: QueueName, queues: QueuesDep) -> QueueOut:
    """One queue: counts by state and by priority, counters, throughput, oldest waiting age, paused flag."""
    if not await queues.known(queue):
        raise Problem(404, f"queue {queue!r} not found", slug="queue-not-found")
    return await _one(queues, queue)


@router.post("/queues/{queue}/pause", responses=problem_responses(422))
async def pause_queue(queue: QueueName, queues: QueuesDep) -> QueueOut:
    """Stop workers taking jobs from the queue; enqueueing goes on."""
    await queues.pause(queue)
    return await _one(queues, queue)


@router.post("/queues/{queue}/resume", responses=problem_responses(422))
async def resume_queue(queue: QueueName, queues: QueuesDep) -> QueueOut:
    """Let workers take jobs from the queue again."""
    await queues.resume(queue)
    return await _one(queues, queue)


@router.get("/queues/{queue}/dead", responses=problem_responses(422))
async def list_dead(
    queue: QueueName,
    inspector: InspectorDep,
    type: TypeFilter = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=4096)] = None,
) -> JobListOut:
    """The dead-letter queue, most recent deaths first; cursor paging."""
    page = await inspector.list_jobs(queue=queue, status=JobState.DEAD, job_type=type, limit=limit, cursor=cursor)
    return JobListOut(jobs=[JobOut.of(job) for job in page.jobs], next_cursor=page.next_cursor)


@router.post("/queues/{queue}/dead/replay", responses=problem_responses(413, 422))
@router.post("/queues/{queue}/dead/retry", responses=problem_responses(413, 422), summary="Replay Dead (alias)")
async def replay_dead(queue: QueueName, queues: QueuesDep, selection: DeadReplayIn | None = None) -> CountOut:
    """Replay dead jobs: all of them, or those of ``type`` and/or with these ``ids``. Returns how many.

    ``POST .../dead/retry`` is an alias of ``POST .../dead/replay``.
    """
    selection = selection or DeadReplayIn()
    return CountOut(count=await queues.dead_replay(queue, job_type=selection.type, ids=selection.ids))


@router.delete("/queues/{queue}/dead", responses=problem_responses(422))
async def purge_dead(queue: QueueName, queues: QueuesDep, type: TypeFilter = None) -> CountOut:
    """Delete dead jobs for good (all, or those of ``type``). Returns how many."""
    return CountOut(count=await queues.dead_purge(queue, job_type=type))


@legacy.get("/queue/stats")
async def queue_stats(queues: QueuesDep) -> QueueStatsOut:
    """Totals over every queue: ready, processing, completed (lifetime), retrying, dead, scheduled."""
    return QueueStatsOut.of(await queues.stats(await queues.names()))
