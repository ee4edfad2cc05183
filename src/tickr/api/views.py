"""Response bodies of the HTTP API and their construction from store objects.

Times are RFC 3339 UTC strings, each paired with the same instant as epoch milliseconds (``*_ms``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from tickr.core.job import Execution, Job, JobState, Priority
from tickr.core.schedule import Misfire, Schedule
from tickr.store.queue_admin import QueueStats
from tickr.store.workers import WorkerInfo


@lru_cache(maxsize=4096)  # a batch's jobs share their creation and due times: each formatted once
def rfc3339(ms: int | None) -> str | None:
    """``1700000000123`` -> ``"2023-11-14T22:13:20.123Z"``."""
    if ms is None:
        return None
    try:
        moment = datetime.fromtimestamp(ms / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class FieldError(BaseModel):
    field: str
    message: str


class ProblemOut(BaseModel):
    """An RFC 9457 problem document (``application/problem+json``)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = Field(None, description="one entry per invalid field (422 only)")


class JobErrorOut(BaseModel):
    type: str
    message: str
    traceback: str = ""


class BackoffOut(BaseModel):
    base: float
    max: float
    jitter: float


class JobOut(BaseModel):
    """A job as stored now."""

    id: str
    kind: Literal["one_off"] = Field("one_off", description="`one_off`; a recurring job has `recurring`")
    type: str
    queue: str
    status: JobState
    priority: Priority
    payload: dict[str, Any]
    attempt: int
    max_retries: int
    backoff: BackoffOut
    timeout: float | None
    execution: Execution
    idempotency_key: str | None
    name: str | None
    description: str | None
    schedule_id: str | None
    worker: str | None
    last_error: JobErrorOut | None
    result: Any = None
    created_at: str | None
    created_at_ms: int | None
    scheduled_for: str | None
    scheduled_for_ms: int | None
    started_at: str | None
    started_at_ms: int | None
    finished_at: str | None
    finished_at_ms: int | None

    warnings: list[str] = Field(
        default_factory=list, description="on submit: e.g. a type no worker has registered yet (TICKR_STRICT_TYPES)"
    )

    @classmethod
    def of(cls, job: Job) -> JobOut:
        data = job.to_dict()
        for name in ("created_at", "scheduled_for", "started_at", "finished_at"):
            data[f"{name}_ms"] = data[name]
            data[name] = rfc3339(data[name])
        return cls.model_validate(data)


class RecurringJobOut(BaseModel):
    """A recurring job (a cron schedule): when it fires, the job each run enqueues, and its state.

    ``status`` is ``active``, ``paused`` (``is_active`` false) or ``deleted`` (soft-deleted: it no longer
    fires, its history stays, and PATCH ``isActive: true`` brings it back). ``next_run_at`` is null unless
    it is active. The job fields (``type`` to ``backoff``) are the template of every run.
    """

    id: str
    kind: Literal["recurring"] = "recurring"
    status: Literal["active", "paused", "deleted"]
    cron: str
    timezone: str
    misfire: Misfire
    max_catch_up: int
    overlap: bool
    is_active: bool
    deleted: bool
    name: str | None
    description: str | None
    type: str
    payload: dict[str, Any]
    queue: str
    priority: Priority
    max_retries: int
    timeout: float | None
    execution: Execution
    backoff: BackoffOut
    next_run_at: str | None
    next_run_at_ms: int | None
    last_run_at: str | None = Field(description="fire time of the latest run")
    last_run_at_ms: int | None
    last_job_id: str | None
    last_job_queue: str | None
    fired: int = Field(description="runs enqueued so far")
    skipped_overlap: int = Field(description="runs skipped because the previous one was unfinished")
    misfired: int = Field(description="occurrences missed while no scheduler ran, and not run later")
    created_at: str | None
    created_at_ms: int | None
    updated_at: str | None
    updated_at_ms: int | None
    deleted_at: str | None
    deleted_at_ms: int | None

    @classmethod
    def of(cls, schedule: Schedule) -> RecurringJobOut:
        active = schedule.is_active and not schedule.deleted
        data = schedule.to_dict()
        data |= schedule.template.to_dict()
        data["status"] = "deleted" if schedule.deleted else "active" if active else "paused"
        data["is_active"] = active
        data["next_run_at"] = schedule.next_run_at if active else None
        for name in ("next_run_at", "last_run_at", "created_at", "updated_at", "deleted_at"):
            data[f"{name}_ms"] = data[name]
            data[name] = rfc3339(data[name])
        return cls.model_validate({name: data[name] for name in cls.model_fields if name in data})


AnyJobOut = Annotated[JobOut | RecurringJobOut, Field(discriminator="kind")]


class JobListOut(BaseModel):
    jobs: list[AnyJobOut] = Field(description="one-off jobs, or recurring ones with `kind=recurring`")
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null at the end")


class RecurringJobListOut(BaseModel):
    schedules: list[RecurringJobOut]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null at the end")


class FireTimeOut(BaseModel):
    utc: str = Field(description="RFC 3339 in UTC")
    local: str = Field(description="the same instant in the recurring job's timezone, with its UTC offset")
    utc_ms: int


class NextRunsOut(BaseModel):
    """The next fire times of a recurring job (if paused or deleted: those it would have if resumed now)."""

    id: str
    cron: str
    timezone: str
    status: Literal["active", "paused", "deleted"]
    next_runs: list[FireTimeOut]

    @classmethod
    def of(cls, schedule: Schedule, runs: list[tuple[datetime, datetime]]) -> NextRunsOut:
        return cls(
            id=schedule.id,
            cron=schedule.cron,
            timezone=schedule.timezone,
            status=RecurringJobOut.of(schedule).status,
            next_runs=[
                FireTimeOut(
                    utc=utc.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                    local=local.isoformat(timespec="milliseconds"),
                    utc_ms=int(utc.timestamp() * 1000),
                )
                for utc, local in runs
            ],
        )


class RunErrorOut(BaseModel):
    type: str
    message: str


class RunOut(BaseModel):
    """One run. A recurring job's: the job an occurrence enqueued and what became of it (``outcome`` is the
    job's status, or ``expired`` once neither Redis nor the SQL history has its record). A one-off job's:
    one attempt from the SQL history (``outcome``: running, succeeded, failed, lost or released), or, before
    the history has it, the job as Redis tells it (``outcome`` is its status)."""

    job_id: str
    queue: str
    outcome: str
    attempt: int | None = None
    worker: str | None = Field(None, description="the worker that ran it, when known")
    fire_time: str | None = Field(None, description="the occurrence (a one-off job: when it was due)")
    fire_time_ms: int | None = None
    started_at: str | None = None
    started_at_ms: int | None = None
    finished_at: str | None = None
    finished_at_ms: int | None = None
    duration_ms: int | None = None
    lateness_ms: int | None = Field(
        None, description="enqueued this long after the fire time (an attempt: started this long after it was due)"
    )
    error: RunErrorOut | None = None

    @classmethod
    def of(cls, entry: dict[str, Any]) -> RunOut:
        """From a ``HistoryEntry.to_dict()`` (times in ms)."""
        data = {name: entry.get(name) for name in cls.model_fields if name in entry}
        for name in ("fire_time", "started_at", "finished_at"):
            data[f"{name}_ms"] = data.get(name)
            data[name] = rfc3339(data.get(name))
        return cls.model_validate(data)


class HistoryOut(BaseModel):
    id: str
    kind: Literal["one_off", "recurring"]
    runs: list[RunOut] = Field(description="newest first")
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null at the end")


class BatchOut(BaseModel):
    jobs: list[JobOut]
    created: int = Field(description="jobs created (the others matched a known idempotency key)")
    warnings: list[str] = Field(default_factory=list, description="e.g. a type no worker has registered yet")


class QueueCounts(BaseModel):
    queued: int = Field(description="ready to run (sum of the ready lists)")
    scheduled: int = Field(description="waiting for their time, retries included")
    retrying: int = Field(description="of `scheduled`, those waiting to retry (estimated beyond 200)")
    active: int
    dead: int
    done: int = Field(description="finished recently and still listed (succeeded, cancelled, lost)")


class QueueOut(BaseModel):
    name: str
    paused: bool
    counts: QueueCounts
    queued_by_priority: dict[str, int]
    counters: dict[str, int] = Field(description="lifetime counters of the queue")
    throughput_per_second: float = Field(description="jobs finished per second over the last minute")
    finished_last_minute: int
    oldest_waiting_seconds: float | None = Field(description="age of the oldest ready job")

    @classmethod
    def of(cls, stats: QueueStats) -> QueueOut:
        return cls(
            name=stats.name,
            paused=stats.paused,
            counts=QueueCounts(
                queued=stats.queued,
                scheduled=stats.scheduled,
                retrying=stats.retrying,
                active=stats.active,
                dead=stats.dead,
                done=stats.done,
            ),
            queued_by_priority=stats.queued_by_priority,
            counters=stats.counters,
            throughput_per_second=round(stats.throughput_per_second, 3),
            finished_last_minute=stats.finished_last_minute,
            oldest_waiting_seconds=None if stats.oldest_waiting_ms is None else stats.oldest_waiting_ms / 1000,
        )


class QueueListOut(BaseModel):
    queues: list[QueueOut]


class QueueStatsBody(BaseModel):
    ready: int
    processing: int
    completed: int = Field(description="lifetime `succeeded` counter")
    retrying: int = Field(description="scheduled retries (estimated beyond 200 per queue)")
    dead: int
    scheduled: int = Field(description="delayed jobs, retries excluded")


class QueueStatsOut(BaseModel):
    queue_stats: QueueStatsBody

    @classmethod
    def of(cls, stats: list[QueueStats]) -> QueueStatsOut:
        retrying = sum(s.retrying for s in stats)
        return cls(
            queue_stats=QueueStatsBody(
                ready=sum(s.queued for s in stats),
                processing=sum(s.active for s in stats),
                completed=sum(s.counters.get("succeeded", 0) for s in stats),
                retrying=retrying,
                dead=sum(s.dead for s in stats),
                scheduled=max(0, sum(s.scheduled for s in stats) - retrying),
            )
        )


class CountOut(BaseModel):
    count: int


class WorkerOut(BaseModel):
    id: str
    host: str
    pid: int | None
    queues: list[str]
    concurrency: int | None
    in_flight: int | None
    last_heartbeat: str | None
    last_heartbeat_ms: int
    types: list[str]  # the task types it runs

    @classmethod
    def of(cls, worker: WorkerInfo) -> WorkerOut:
        return cls(
            id=worker.id,
            host=worker.host,
            pid=worker.pid,
            queues=worker.queues,
            concurrency=worker.concurrency,
            in_flight=worker.in_flight,
            last_heartbeat=rfc3339(worker.last_heartbeat_ms),
            last_heartbeat_ms=worker.last_heartbeat_ms,
            types=worker.types,
        )


class WorkerListOut(BaseModel):
    workers: list[WorkerOut]


class HealthOut(BaseModel):
    status: str = Field(description="ok or unavailable")
    redis: str = Field(description="ok or unavailable")
    version: str
    uptime_seconds: float
    history: dict[str, float | int | bool] | None = Field(
        None,
        description="SQL history's lag behind Redis: lag_seconds (oldest event not yet in SQL), backlog, pending,"
        " dropped (unread events lost at the stream cap), sink_seen; null when TICKR_HISTORY=false",
    )


PROBLEM_DESCRIPTIONS = {
    401: "missing or wrong bearer token",
    404: "no such job or queue (or the job is not a recurring one)",
    409: "the job's state does not allow this",
    413: "request body too large",
    422: "invalid request: `errors` names each field",
    503: "the job store (Redis/Valkey) or the history database is unavailable",
}


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for these problem statuses (503 is always possible)."""
    return {code: {"model": ProblemOut, "description": PROBLEM_DESCRIPTIONS[code]} for code in sorted({*codes, 503})}
