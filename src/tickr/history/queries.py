"""Reading the history tables: job listings with filters and keyset paging, a job by id, its runs, a schedule's.

Every listing is newest first in a stable order (``created_at DESC, id DESC`` for jobs, ``lease DESC`` (run order) for
runs; the job listing also oldest first, ``order="asc"``) and pages by keyset: the opaque cursor encodes the last
row's sort key (and the listing's order), so a page costs one index range scan however deep it is, and rows
written meanwhile never shift a page. Database errors leave this module as
``HistoryUnavailable`` only (the API answers 503, the CLI exits 1).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ParamSpec, TypeVar

import orjson
from sqlalchemy import ColumnElement, Row, Select, select, tuple_
from sqlalchemy.exc import DBAPIError, OperationalError

from tickr.core.errors import TickrError, ValidationError
from tickr.core.job import Execution, Job, JobError, JobState, Priority
from tickr.history.database import HistoryDB
from tickr.history.schema import job_runs, jobs
from tickr.scheduler.manager import HistoryEntry, Schedules

P = ParamSpec("P")
T = TypeVar("T")

MAX_LIMIT = 500
# The idempotency key the scheduler gives each occurrence: ``schedule:<schedule id>:<fire ms>``.
OCCURRENCE_KEY = re.compile(r"^schedule:(?P<schedule>.+):(?P<fire>[0-9]{1,18})$")
RELATIVE_TIME = re.compile(r"(?P<n>[0-9]{1,9})(?P<unit>[smhd])")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
REDIS_CURSOR = re.compile(r"[0-9]{1,18}")  # the cursor of a schedule's Redis run history: a fire time
_JOB_CURSOR = "j"
_JOB_CURSOR_ASC = "ja"  # a job listing oldest first
ORDERS = ("desc", "asc")
_RUN_CURSOR = "r"


class HistoryUnavailable(TickrError):
    """The history database cannot be reached or answered with an error (the API answers 503)."""


def history_boundary(method: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Translate the database driver's errors into ``HistoryUnavailable``, once, at this module's edge."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(*args, **kwargs)
        except (OperationalError, DBAPIError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "orig", None) or exc
            raise HistoryUnavailable(f"the history database is unavailable: {type(reason).__name__}") from exc

    return wrapper


@dataclass(frozen=True, slots=True)
class JobFilter:
    """What ``list_jobs`` selects; every field is optional. Times are epoch ms: ``since`` <= created_at < ``until``."""

    queue: str | None = None
    status: JobState | None = None
    type: str | None = None
    schedule_id: str | None = None
    worker: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    error_contains: str | None = None
    priority: Priority | None = None


@dataclass(frozen=True, slots=True)
class HistoryJobPage:
    jobs: list[Job]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class RunEntry:
    """One attempt of a job (a ``job_runs`` row). ``fire_time`` is when the attempt became due."""

    job_id: str
    queue: str
    attempt: int
    outcome: str  # running, succeeded, failed, lost, released
    worker: str | None
    fire_time: int | None
    started_at: int | None
    finished_at: int | None
    duration_ms: int | None
    lateness_ms: int | None
    error: dict[str, str] | None
    traceback: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class RunPage:
    runs: list[RunEntry]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class OccurrencePage:
    items: list[HistoryEntry]
    next_cursor: str | None


def encode_cursor(*key: int | str) -> str:
    """An opaque cursor for a sort key (URL-safe base64 of a JSON array, no padding)."""
    return base64.urlsafe_b64encode(orjson.dumps(list(key))).rstrip(b"=").decode()


def job_cursor(created_at: int, job_id: str, order: str = "desc") -> str:
    """The cursor that continues a job listing after the job with this sort key (strictly older; with
    ``order="asc"`` strictly newer)."""
    return encode_cursor(_JOB_CURSOR_ASC if order == "asc" else _JOB_CURSOR, created_at, job_id)


def _order(order: str) -> str:
    if order not in ORDERS:
        raise ValidationError(f"unknown order {order!r}", {"order": "desc (newest first) or asc (oldest first)"})
    return order


def _decode(cursor: str, kind: str, types: tuple[type, ...]) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        value = None
    if (
        not isinstance(value, list)
        or len(value) != len(types) + 1
        or value[0] != kind
        or not all(isinstance(v, t) and not isinstance(v, bool) for v, t in zip(value[1:], types, strict=True))
    ):
        raise ValidationError("bad cursor", {"cursor": "not a cursor returned by this listing"})
    return value[1:]


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationError(f"limit must be 1-{MAX_LIMIT}", {"limit": f"must be an integer from 1 to {MAX_LIMIT}"})
    return limit


def parse_time(text: str, field: str, now_ms: int) -> int:
    """A time filter as epoch ms: an RFC 3339 date-time with its offset (``2026-01-02T03:04:05Z``), or a
    duration before ``now_ms`` (``90s``, ``30m``, ``1h``, ``7d``). ``ValidationError`` naming ``field`` else."""
    value = text.strip()
    relative = RELATIVE_TIME.fullmatch(value)
    if relative:
        return now_ms - int(relative["n"]) * UNIT_MS[relative["unit"]]
    try:
        moment = datetime.fromisoformat(value.replace("z", "Z")) if "T" in value.upper() else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ValidationError(
            f"invalid {field} {text!r}",
            {field: "an RFC 3339 date-time with offset (2026-01-02T03:04:05Z) or a duration ago (90s, 30m, 1h, 7d)"},
        )
    return (moment - EPOCH) // timedelta(milliseconds=1)


def like_pattern(text: str) -> str:
    """``text`` as a LIKE pattern matching it anywhere, its wildcards (and the escape character) escaped."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def fire_time_of(row: Row[Any]) -> int | None:
    """The occurrence a scheduler-made job ran for: the fire ms in its idempotency key."""
    match = OCCURRENCE_KEY.match(row.idempotency_key or "")
    if match and (row.schedule_id is None or match["schedule"] == row.schedule_id):
        return int(match["fire"])
    return None


def job_from_row(row: Row[Any], traceback: str | None = None) -> Job:
    """A ``Job`` from a ``jobs`` row (fields SQL does not keep, backoff and timeout, take their defaults)."""
    error = None
    if row.error_type is not None or row.error_message is not None:
        error = JobError(type=row.error_type or "", message=row.error_message or "", traceback=traceback or "")
    return Job(
        id=row.id,
        type=row.type or "",
        payload=row.payload if isinstance(row.payload, dict) else {},
        queue=row.queue,
        priority=Priority(row.priority) if row.priority else Priority.DEFAULT,
        status=JobState(row.status),
        attempt=row.attempt or 0,
        max_retries=row.max_retries if row.max_retries is not None else 0,
        execution=Execution(row.execution) if row.execution else Execution.AT_LEAST_ONCE,
        idempotency_key=row.idempotency_key,
        name=row.name,
        description=row.description,
        schedule_id=row.schedule_id,
        created_at=row.created_at,
        scheduled_for=row.scheduled_for,
        started_at=row.started_at,
        finished_at=row.finished_at,
        last_error=error,
        result=row.result,
        worker=row.worker,
    )


def occurrence_from_row(row: Row[Any], fire_time: int | None = None) -> HistoryEntry:
    """One run of a recurring job from its ``jobs`` row, as ``Schedules.history`` tells it from Redis."""
    fire = fire_time if fire_time is not None else fire_time_of(row)
    started, finished, created = row.started_at, row.finished_at, row.created_at
    error = None
    if row.error_type is not None or row.error_message is not None:
        error = {"type": row.error_type or "", "message": row.error_message or ""}
    return HistoryEntry(
        fire_time=fire if fire is not None else created or 0,
        job_id=row.id,
        queue=row.queue,
        outcome=row.status,
        attempt=row.attempt,
        created_at=created,
        started_at=started,
        finished_at=finished,
        duration_ms=finished - started if finished is not None and started is not None else None,
        lateness_ms=created - fire if created is not None and fire is not None else None,
        error=error,
    )


def _run_from_row(row: Row[Any]) -> RunEntry:
    error = None
    if row.error_type is not None or row.error_message is not None:
        error = {"type": row.error_type or "", "message": row.error_message or ""}
    duration = row.duration_ms
    if duration is None and row.finished_at is not None and row.started_at is not None:
        duration = row.finished_at - row.started_at
    return RunEntry(
        job_id=row.job_id,
        queue=row.queue,
        attempt=row.attempt,
        outcome=row.outcome,
        worker=row.worker,
        fire_time=row.due_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        duration_ms=duration,
        lateness_ms=row.lateness_ms,
        error=error,
        traceback=row.error_traceback,
    )


class HistoryQueries:
    """Read-only queries on the history tables of ``db``."""

    def __init__(self, db: HistoryDB) -> None:
        self.db = db

    async def close(self) -> None:
        await self.db.close()

    @history_boundary
    async def list_jobs(
        self,
        *,
        queue: str | None = None,
        status: JobState | str | None = None,
        type: str | None = None,
        schedule_id: str | None = None,
        worker: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        error_contains: str | None = None,
        priority: Priority | str | None = None,
        order: str = "desc",
        limit: int = 50,
        cursor: str | None = None,
    ) -> HistoryJobPage:
        """Jobs newest first (``created_at DESC, id DESC``), or oldest first with ``order="asc"``;
        ``error_contains`` matches error type or message, case-insensitively; ``since_ms`` <= created_at <
        ``until_ms``. ``next_cursor`` is None at the end; a cursor only continues a listing in its own order."""
        try:
            state = JobState(status) if status is not None else None
        except ValueError:
            raise ValidationError(f"unknown status {status!r}", {"status": "not a job status"}) from None
        try:
            rank = Priority(priority) if priority is not None else None
        except ValueError:
            raise ValidationError(
                f"unknown priority {priority!r}", {"priority": "critical, high, default or low"}
            ) from None
        where = self._filters(
            JobFilter(queue, state, type, schedule_id, worker, since_ms, until_ms, error_contains or None, rank)
        )
        order = _order(order)
        async with self.db.engine.connect() as conn:
            rows = list((await conn.execute(self.job_query(where, _limit(limit), cursor, order))).all())
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = job_cursor(rows[-1].created_at or 0, rows[-1].id, order) if more else None
        return HistoryJobPage([job_from_row(row) for row in rows], next_cursor)

    @history_boundary
    async def get_job(self, job_id: str) -> Job | None:
        """The job's latest recorded state (the last error with the traceback of its latest attempt), or None."""
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(select(jobs).where(jobs.c.id == job_id))).first()
            if row is None:
                return None
            traceback = None
            if row.error_type is not None or row.error_message is not None:
                query = (
                    select(job_runs.c.error_traceback)
                    .where(job_runs.c.job_id == job_id, job_runs.c.error_traceback.is_not(None))
                    .order_by(job_runs.c.lease.desc())
                    .limit(1)
                )
                traceback = (await conn.execute(query)).scalar()
        return job_from_row(row, traceback)

    @history_boundary
    async def runs(self, job_id: str, *, limit: int = 20, cursor: str | None = None) -> RunPage:
        """The job's runs (one per lease: a replayed job's attempts start again at 1), newest first."""
        query = select(job_runs).where(job_runs.c.job_id == job_id)
        if cursor is not None:
            (lease,) = _decode(cursor, _RUN_CURSOR, (int,))
            query = query.where(job_runs.c.lease < lease)
        query = query.order_by(job_runs.c.lease.desc()).limit(_limit(limit) + 1)
        async with self.db.engine.connect() as conn:
            rows = list((await conn.execute(query)).all())
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor(_RUN_CURSOR, rows[-1].lease) if more else None
        return RunPage([_run_from_row(row) for row in rows], next_cursor)

    @history_boundary
    async def schedule_runs(self, schedule_id: str, *, limit: int = 20, cursor: str | None = None) -> OccurrencePage:
        """The occurrences of a recurring job (its jobs), newest first, each with its job's outcome."""
        query = self.job_query([jobs.c.schedule_id == schedule_id], _limit(limit), cursor)
        async with self.db.engine.connect() as conn:
            rows = list((await conn.execute(query)).all())
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = job_cursor(rows[-1].created_at or 0, rows[-1].id) if more else None
        return OccurrencePage([occurrence_from_row(row) for row in rows], next_cursor)

    @history_boundary
    async def occurrences(self, job_ids: Sequence[str]) -> dict[str, HistoryEntry]:
        """The recorded outcome of each of these jobs that SQL has, by id (to fill runs Redis has forgotten)."""
        if not job_ids:
            return {}
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(select(jobs).where(jobs.c.id.in_(list(job_ids))))).all()
        return {row.id: occurrence_from_row(row) for row in rows}

    @staticmethod
    def _filters(f: JobFilter) -> list[ColumnElement[bool]]:
        where: list[ColumnElement[bool]] = []
        for column, value in (
            (jobs.c.queue, f.queue),
            (jobs.c.status, f.status.value if f.status is not None else None),
            (jobs.c.type, f.type),
            (jobs.c.schedule_id, f.schedule_id),
            (jobs.c.worker, f.worker),
            (jobs.c.priority, f.priority.value if f.priority is not None else None),
        ):
            if value is not None:
                where.append(column == value)
        if f.since_ms is not None:
            where.append(jobs.c.created_at >= f.since_ms)
        if f.until_ms is not None:
            where.append(jobs.c.created_at < f.until_ms)
        if f.error_contains is not None:
            pattern = like_pattern(f.error_contains)
            where.append(
                jobs.c.error_type.ilike(pattern, escape="\\") | jobs.c.error_message.ilike(pattern, escape="\\")
            )
        return where

    @staticmethod
    def job_query(
        where: Sequence[ColumnElement[bool]], limit: int, cursor: str | None, order: str = "desc"
    ) -> Select[Any]:
        """``limit + 1`` rows after ``cursor`` in listing order (the extra row says whether a next page exists).

        The keyset condition is a row comparison, ``(created_at, id) < (:c, :i)`` (``>`` oldest first): with a
        filter's index ``(column, created_at, id)`` it is one index range scan, read backwards (forwards),
        stopping after the page. A cursor of the other order is refused (``ValidationError`` naming ``cursor``).
        """
        ascending = order == "asc"
        if cursor is not None:
            kind, other = (_JOB_CURSOR_ASC, _JOB_CURSOR) if ascending else (_JOB_CURSOR, _JOB_CURSOR_ASC)
            try:
                created_at, job_id = _decode(cursor, kind, (int, str))
            except ValidationError:
                _decode(cursor, other, (int, str))  # not a job cursor at all: that error
                mine, theirs = ("asc", "desc") if ascending else ("desc", "asc")
                raise ValidationError(
                    "cursor of another order", {"cursor": f"a cursor of order={theirs}, not {mine}: start again"}
                ) from None
            key, after = tuple_(jobs.c.created_at, jobs.c.id), tuple_(created_at, job_id)
            where = [*where, key > after if ascending else key < after]
        by = (jobs.c.created_at, jobs.c.id)
        return select(jobs).where(*where).order_by(*(c.asc() if ascending else c.desc() for c in by)).limit(limit + 1)

    @classmethod
    def list_query(
        cls, *, limit: int = 50, cursor: str | None = None, order: str = "desc", **filters: Any
    ) -> Select[Any]:
        """The statement ``list_jobs`` runs for these filters (``JobFilter`` fields): for ``EXPLAIN``."""
        if filters.get("status") is not None:
            filters["status"] = JobState(filters["status"])
        if filters.get("priority") is not None:
            filters["priority"] = Priority(filters["priority"])
        return cls.job_query(cls._filters(JobFilter(**filters)), limit, cursor, _order(order))


async def recurring_runs(
    schedules: Schedules, history: HistoryQueries, schedule_id: str, *, limit: int = 20, cursor: str | None = None
) -> OccurrencePage:
    """A page of a recurring job's runs, newest first: those Redis lists (its ``fired`` zset, a numeric cursor),
    each whose job expired from Redis filled from SQL, then the older ones only SQL has (an opaque cursor).

    ``JobNotFound`` when ``schedule_id`` is not a recurring job.
    """
    if cursor is not None and not REDIS_CURSOR.fullmatch(cursor):
        return await history.schedule_runs(schedule_id, limit=limit, cursor=cursor)
    page = await schedules.history(schedule_id, limit=limit, cursor=cursor)
    expired = [entry.job_id for entry in page.items if entry.outcome == "expired"]
    recorded = await history.occurrences(expired) if expired else {}
    entries = [_filled(entry, recorded.get(entry.job_id)) for entry in page.items]
    if len(entries) == limit:
        return OccurrencePage(entries, str(entries[-1].fire_time))
    # Redis lists no older run: go on in SQL, strictly before the oldest run Redis listed.
    boundary: str | None = None
    if entries and entries[-1].created_at is not None:
        boundary = job_cursor(entries[-1].created_at, entries[-1].job_id)
    elif entries or cursor is not None:  # (the job is in neither store) its older runs were made before it fired
        boundary = job_cursor(entries[-1].fire_time if entries else int(cursor or 0), "")
    older = await history.schedule_runs(schedule_id, limit=limit - len(entries), cursor=boundary)
    seen = {entry.job_id for entry in entries}
    return OccurrencePage(entries + [e for e in older.items if e.job_id not in seen], older.next_cursor)


def _filled(entry: HistoryEntry, recorded: HistoryEntry | None) -> HistoryEntry:
    """A run Redis shows as ``expired``, with its job's outcome from SQL (and the fire time Redis recorded)."""
    if recorded is None:
        return entry
    lateness = recorded.created_at - entry.fire_time if recorded.created_at is not None else None
    return dataclasses.replace(recorded, fire_time=entry.fire_time, lateness_ms=lateness)
