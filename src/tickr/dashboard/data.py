"""What each dashboard page shows, read through the store facade and the SQL history (never Redis directly)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from tickr.app import App
from tickr.config import Settings
from tickr.core.errors import JobNotFound, TickrError, ValidationError
from tickr.core.job import Job, JobState, Priority
from tickr.dashboard.chart import last_hour
from tickr.dashboard.describe import in_words
from tickr.history.queries import HistoryQueries, HistoryUnavailable, RunEntry, parse_time
from tickr.scheduler.manager import Schedules
from tickr.store.queue_admin import QueueStats
from tickr.store.workers import WorkerInfo

PAGE_SIZE = 50
DEAD_SCAN = 10_000  # dead jobs read at most to find those with an error text
TEXT_WINDOW = "24h"  # the default time range of a text search
CANCELLABLE = frozenset({JobState.QUEUED, JobState.SCHEDULED, JobState.RETRYING})
REPLAYABLE = frozenset({JobState.DEAD, JobState.LOST, JobState.CANCELLED})
STATE_COLUMNS = ("queued", "scheduled", "retrying", "active", "dead", "done")


class Backend(Protocol):
    """What the dashboard needs of the API's process state (``tickr.api.deps.ApiState`` satisfies it)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def app(self) -> App: ...
    @property
    def history(self) -> HistoryQueries | None: ...


def totals(stats: list[QueueStats]) -> dict[str, int]:
    return {col: sum(int(getattr(s, col)) for s in stats) for col in STATE_COLUMNS}


async def overview(backend: Backend) -> dict[str, Any]:
    store = backend.app.store
    stats = await store.queues.stats(await store.queues.names())
    workers = await store.workers.live()
    alive: dict[str, int] = {}
    for worker in workers:
        for q in worker.queues:
            alive[q] = alive.get(q, 0) + 1
    hour = None
    if backend.history is not None:
        now = stats[0].now_ms if stats else await store.queues.now_ms()
        try:
            hour = await last_hour(backend.history, now)
        except HistoryUnavailable:
            hour = None
    return {
        "hour": hour,
        "history_on": backend.history is not None,
        "queues": stats,
        "totals": totals(stats),
        "throughput": round(sum(s.throughput_per_second for s in stats), 2),
        "failed": sum(s.counters.get("failed", 0) for s in stats),
        "workers": len(workers),
        "alive": alive,
    }


def error_matches(job: Job, text: str) -> bool:
    """True when ``text`` (case-insensitive) is in the job's last error type or message."""
    error = job.last_error
    return error is not None and text.casefold() in f"{error.type}: {error.message}".casefold()


async def dead_ids_with_error(backend: Backend, queue: str, job_type: str | None, text: str) -> list[str]:
    """The ids of the dead jobs of ``queue`` (of ``job_type``) whose error holds ``text``, at most ``DEAD_SCAN``."""
    ids: list[str] = []
    cursor, scanned = None, 0
    while scanned < DEAD_SCAN:
        page = await backend.app.store.jobs.list_jobs(
            queue=queue, status=JobState.DEAD, job_type=job_type, limit=500, cursor=cursor
        )
        scanned += len(page.jobs)
        ids += [job.id for job in page.jobs if error_matches(job, text)]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    return ids


async def queue_page(
    backend: Backend, queue: str, dead_type: str | None, cursor: str | None, dead_error: str = ""
) -> dict[str, Any] | None:
    store = backend.app.store
    try:
        if not await store.queues.known(queue):
            return None
    except ValidationError:  # not a valid queue name
        return None
    (stats,) = await store.queues.stats([queue])
    dead = await store.jobs.list_jobs(
        queue=queue, status=JobState.DEAD, job_type=dead_type, limit=PAGE_SIZE, cursor=cursor
    )
    shown = [job for job in dead.jobs if error_matches(job, dead_error)] if dead_error else dead.jobs
    return {
        "q": stats,
        "dead": shown,
        "next_cursor": dead.next_cursor,
        "dead_type": dead_type or "",
        "dead_error": dead_error,
    }


@dataclass(frozen=True, slots=True)
class JobQuery:
    """The filters of the jobs page, as the form sends them."""

    queue: str = ""
    state: str = ""
    type: str = ""
    text: str = ""
    since: str = ""
    until: str = ""
    schedule: str = ""
    priority: str = ""
    order: str = ""  # "asc" oldest first, "desc" newest first: from the SQL history; "" newest first, live
    cursor: str = ""

    @property
    def needs_history(self) -> bool:
        return bool(self.text or self.since or self.until or self.schedule or self.order in ("asc", "desc"))

    @property
    def ascending(self) -> bool:
        return self.order == "asc"

    def params(self, **override: str) -> dict[str, str]:
        values = {name: str(getattr(self, name)) for name in self.__dataclass_fields__ if name != "cursor"}
        values |= override
        return {k: v for k, v in values.items() if v}


async def jobs_page(backend: Backend, query: JobQuery, now_ms: int) -> dict[str, Any]:
    """Live jobs from Redis; with text or a time range, from the SQL history (which matches ids and errors)."""
    store = backend.app.store
    history = backend.history
    state = JobState(query.state) if query.state else None
    try:
        priority = Priority(query.priority) if query.priority else None
    except ValueError:
        raise ValidationError(f"unknown priority {query.priority!r}", {"priority": "not a priority"}) from None
    ascending = query.ascending and history is not None
    if query.needs_history and history is not None:
        # A text search scans rows (LIKE '%text%'): without a time range it looks at the last day only.
        since = query.since or (TEXT_WINDOW if query.text else "")
        since_ms = parse_time(since, "since", now_ms) if since else None
        until_ms = parse_time(query.until, "until", now_ms) if query.until else None
        page = await history.list_jobs(
            queue=query.queue or None,
            status=state,
            type=query.type or None,
            schedule_id=query.schedule or None,
            since_ms=since_ms,
            until_ms=until_ms,
            error_contains=query.text or None,
            priority=priority,
            order="asc" if ascending else "desc",
            limit=PAGE_SIZE,
            cursor=query.cursor or None,
        )
        jobs, next_cursor, source = page.jobs, page.next_cursor, "history"
        if query.text and not query.cursor:
            exact = await _find(backend, query.text)
            if exact is not None and all(j.id != exact.id for j in jobs):
                jobs = [exact, *jobs]
    else:
        live = await store.jobs.list_jobs(
            queue=query.queue or None,
            status=state,
            job_type=query.type or None,
            priority=priority,
            limit=PAGE_SIZE,
            cursor=query.cursor or None,
        )
        jobs, next_cursor, source = live.jobs, live.next_cursor, "live"
    return {
        "jobs": sorted(jobs, key=lambda j: j.created_at or 0, reverse=not ascending),
        "next_cursor": next_cursor,
        "source": source,
        "query": query,
        "queue_names": await store.queues.names(),
        "states": [s.value for s in JobState],
        "priorities": [p.value for p in Priority],
        "ascending": ascending,
        "history_on": history is not None,
        "text_ignored": query.needs_history and history is None,
        "text_window": TEXT_WINDOW if query.text and not query.since else "",
    }


async def _find(backend: Backend, job_id: str) -> Job | None:
    try:
        return await backend.app.store.jobs.get_job(job_id)
    except (JobNotFound, TickrError):
        pass
    if backend.history is not None:
        return await backend.history.get_job(job_id)
    return None


async def job_page(backend: Backend, job_id: str) -> dict[str, Any] | None:
    job, live = None, True
    try:
        job = await backend.app.store.jobs.get_job(job_id)
    except JobNotFound:
        live = False
        if backend.history is not None:
            job = await backend.history.get_job(job_id)
    if job is None:
        return None
    runs: list[RunEntry] = []
    if backend.history is not None:
        runs = (await backend.history.runs(job_id, limit=100)).runs
    return {
        "job": job,
        "live": live,
        "runs": runs,
        "history_on": backend.history is not None,
        "can_cancel": live and job.status in CANCELLABLE,
        "can_replay": live and job.status in REPLAYABLE,
        "can_delete": live and job.status is JobState.DEAD,
    }


def worker_rows(workers: list[WorkerInfo], now_ms: int, lease_seconds: float) -> list[dict[str, Any]]:
    """Each live worker with its heartbeat age; late when older than two heartbeat intervals (lease/3 each)."""
    late_after = 2 * lease_seconds / 3
    rows = []
    for w in workers:
        age = max(0.0, (now_ms - w.last_heartbeat_ms) / 1000)
        rows.append({"w": w, "age": round(age, 1), "late": age > late_after})
    return rows


async def workers_page(backend: Backend) -> dict[str, Any]:
    store = backend.app.store
    workers = await store.workers.live()
    now = await store.queues.now_ms()
    active: dict[str, list[Job]] = {}
    for q in sorted({q for w in workers for q in w.queues}):
        page = await store.jobs.list_jobs(queue=q, status=JobState.ACTIVE, limit=PAGE_SIZE)
        for job in page.jobs:
            active.setdefault(job.worker or "", []).append(job)
    return {"workers": worker_rows(workers, now, backend.settings.lease_seconds), "active": active}


async def schedules_page(backend: Backend) -> dict[str, Any]:
    schedules = Schedules(backend.app)
    page = await schedules.list_schedules(limit=100)
    last = [(s.last_job_queue, s.last_job_id) for s in page.items if s.last_job_id and s.last_job_queue]
    found = await backend.app.store.jobs.get_jobs(last) if last else []
    outcome = {job.id: job.status.value for job in found if job is not None}
    rows = []
    for s in page.items:
        fires = await schedules.next_runs(s.id, 5)
        rows.append(
            {
                "s": s,
                "fires": [(utc.isoformat(), local.isoformat()) for utc, local in fires],
                "last_outcome": outcome.get(s.last_job_id or "", ""),
                "words": in_words(s.cron, s.timezone),
            }
        )
    return {"schedules": rows}
