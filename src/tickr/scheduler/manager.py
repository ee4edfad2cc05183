"""Managing recurring jobs: create, read, list, update, pause/resume, soft delete, next runs and run history.

The functions the SDK, the CLI and the HTTP API call; validation errors carry per-field messages.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from tickr.core.cron import CronSpec, from_ms, next_fire_ms, parse_schedule
from tickr.core.errors import JobNotFound, ValidationError
from tickr.core.factory import new_job_id
from tickr.core.schedule import JobTemplate, Misfire, Schedule
from tickr.store.replies import ScheduleDeleteCode, ScheduleSaveCode

if TYPE_CHECKING:
    from tickr.store.schedule_store import ScheduleStore
    from tickr.store.store import RedisStore
    from tickr.tasks import TaskCatalog

SCHEDULE_ID_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
MAX_CATCH_UP = 1_000
TEMPLATE_FIELDS = frozenset({"type", "payload", "queue", "priority", "max_retries", "timeout", "execution", "backoff"})
SCHEDULE_FIELDS = frozenset(
    {"cron", "timezone", "misfire", "max_catch_up", "overlap", "is_active", "name", "description"}
)
_PERIODIC_NS = uuid.UUID("5b0e3f3c-6f0a-4c43-9d1e-2f6d7a1c9b10")
_SAVE_ATTEMPTS = 8


def periodic_schedule_id(task_name: str) -> str:
    """The stable schedule id of an ``@app.task(cron=...)`` definition (a UUIDv5 of the task name)."""
    return str(uuid.uuid5(_PERIODIC_NS, task_name))


@dataclass(frozen=True, slots=True)
class SchedulePage:
    """One page of ``Schedules.list``; pass ``next_cursor`` back for the next page (None at the end)."""

    items: list[Schedule]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One run of a schedule: the occurrence and what became of its job."""

    fire_time: int
    job_id: str
    queue: str
    outcome: str  # the job's status, or "expired" once its record is gone (after retention)
    attempt: int | None = None
    created_at: int | None = None
    started_at: int | None = None
    finished_at: int | None = None
    duration_ms: int | None = None
    lateness_ms: int | None = None
    error: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class HistoryPage:
    items: list[HistoryEntry]
    next_cursor: str | None


class Schedules:
    """Schedule management for an app's tasks (``App`` or any ``TaskCatalog``: task defaults, store)."""

    def __init__(self, app: TaskCatalog, store: RedisStore | None = None) -> None:
        self.app = app
        self.db: ScheduleStore = (store or app.store).schedules

    # -- create -------------------------------------------------------------------------------
    async def create(
        self,
        type: str,
        payload: dict[str, Any] | None = None,
        *,
        cron: str,
        timezone: str = "UTC",
        misfire: Misfire | str = Misfire.SKIP,
        max_catch_up: int = 10,
        overlap: bool = True,
        name: str | None = None,
        description: str | None = None,
        is_active: bool = True,
        schedule_id: str | None = None,
        **job_options: Any,
    ) -> Schedule:
        """Validate and store a new schedule; ``ValidationError`` (per-field ``errors``) when it cannot be.

        ``job_options``: queue, priority, max_retries, timeout, execution, backoff (task defaults otherwise).
        A ``schedule_id`` already in use is a ``ValidationError`` on ``id``.
        """
        schedule = self.build(
            {"type": type, "payload": payload, **job_options},
            {
                "cron": cron,
                "timezone": timezone,
                "misfire": misfire,
                "max_catch_up": max_catch_up,
                "overlap": overlap,
                "name": name,
                "description": description,
                "is_active": is_active,
            },
            schedule_id or new_job_id(),
        )
        next_run = await self._next_after_now(schedule)
        code, _ = await self.db.save(schedule, mode="create", next_run_at=next_run)
        if code is ScheduleSaveCode.EXISTS:
            raise ValidationError(f"schedule {schedule.id!r} already exists", {"id": "already exists"})
        return await self.require(schedule.id)

    def build(self, template: dict[str, Any], options: dict[str, Any], schedule_id: str) -> Schedule:
        """A validated ``Schedule`` (not stored) from template fields and schedule options."""
        errors: dict[str, str] = {}
        if not isinstance(schedule_id, str) or not SCHEDULE_ID_RE.match(schedule_id):
            errors["id"] = "must be 1-64 characters of letters, digits, '_', '-' or '.'"
        job_template = self._template(template, errors)
        cron, timezone = options["cron"], options.get("timezone") or "UTC"
        try:
            parse_schedule(cron if isinstance(cron, str) else "", timezone if isinstance(timezone, str) else "")
        except ValidationError as exc:
            errors.update(exc.errors)
        try:
            misfire = Misfire(options.get("misfire") or Misfire.SKIP)
        except ValueError:
            errors["misfire"] = "must be one of skip, catch_up, none"
            misfire = Misfire.SKIP
        max_catch_up = options.get("max_catch_up", 10)
        if not isinstance(max_catch_up, int) or isinstance(max_catch_up, bool) or not 1 <= max_catch_up <= MAX_CATCH_UP:
            errors["max_catch_up"] = f"must be an integer from 1 to {MAX_CATCH_UP}"
        for flag in ("overlap", "is_active"):
            if not isinstance(options.get(flag, True), bool):
                errors[flag] = "must be true or false"
        for text in ("name", "description"):
            value = options.get(text)
            if value is not None and (not isinstance(value, str) or len(value) > 500):
                errors[text] = "must be a string of at most 500 characters"
        if errors or job_template is None:
            raise ValidationError("invalid schedule: " + "; ".join(f"{k}: {v}" for k, v in errors.items()), errors)
        return Schedule(
            id=schedule_id,
            cron=" ".join(cron.split()),
            timezone=timezone,
            template=job_template,
            misfire=misfire,
            max_catch_up=max_catch_up,
            overlap=options.get("overlap", True),
            is_active=options.get("is_active", True),
            name=options.get("name") or None,
            description=options.get("description") or None,
        )

    def _template(self, fields: dict[str, Any], errors: dict[str, str]) -> JobTemplate | None:
        unknown = set(fields) - TEMPLATE_FIELDS
        if unknown:
            errors.update(dict.fromkeys(sorted(unknown), "unknown field"))
            return None
        options = {k: v for k, v in fields.items() if k not in {"type", "payload"} and v is not None}
        try:
            job = self.app.build_job(fields.get("type"), fields.get("payload"), **options)  # type: ignore[arg-type]
        except ValidationError as exc:
            errors.update(exc.errors or {"type": str(exc)})
            return None
        except TypeError as exc:
            errors["payload"] = str(exc)
            return None
        return JobTemplate(
            type=job.type,
            payload=job.payload,
            queue=job.queue,
            priority=job.priority,
            max_retries=job.max_retries,
            timeout=job.timeout,
            execution=job.execution,
            backoff=job.backoff,
        )

    async def sync_periodic(self) -> list[Schedule]:
        """Create or update the schedule of every ``@app.task(cron=...)`` definition of the app (idempotent)."""
        synced = []
        for periodic in self.app.periodic.values():
            schedule = self.build(
                {"type": periodic.task},
                {"cron": periodic.cron, "timezone": periodic.timezone, "name": periodic.task},
                periodic_schedule_id(periodic.task),
            )
            synced.append(await self.ensure(schedule))
        return synced

    async def ensure(self, schedule: Schedule) -> Schedule:
        """Create ``schedule`` if its id is unknown, else bring its definition in line (keeping its state:
        a paused or deleted schedule stays so). Idempotent; for ``@app.task(cron=...)`` definitions."""
        code, _ = await self.db.save(schedule, mode="ensure", next_run_at=await self._next_after_now(schedule))
        current = await self.require(schedule.id)
        if code is ScheduleSaveCode.SAVED or _same_definition(current, schedule):
            return current
        changes = {
            "cron": schedule.cron,
            "timezone": schedule.timezone,
            "misfire": schedule.misfire,
            "max_catch_up": schedule.max_catch_up,
            "overlap": schedule.overlap,
            "name": schedule.name,
            "description": schedule.description,
            **schedule.template.to_dict(),
        }
        return await self.update(schedule.id, **changes)

    # -- read ---------------------------------------------------------------------------------
    async def get(self, schedule_id: str) -> Schedule | None:
        """The schedule, or None when ``schedule_id`` is not a schedule (e.g. a plain job id)."""
        if not SCHEDULE_ID_RE.match(schedule_id):
            return None
        return await self.db.get(schedule_id)

    async def require(self, schedule_id: str) -> Schedule:
        """The schedule; ``JobNotFound`` when there is none (schedules are addressed as recurring jobs)."""
        schedule = await self.get(schedule_id)
        if schedule is None:
            raise JobNotFound(schedule_id)
        return schedule

    async def list_schedules(
        self, *, limit: int = 50, cursor: str | None = None, include_deleted: bool = False
    ) -> SchedulePage:
        """Schedules in creation order, ``limit`` per page; ``cursor`` is the previous page's ``next_cursor``."""
        if not 1 <= limit <= 1000:
            raise ValidationError("limit must be 1-1000", {"limit": "must be an integer from 1 to 1000"})
        try:
            offset = int(cursor) if cursor else 0
        except ValueError:
            raise ValidationError("bad cursor", {"cursor": "not a cursor returned by this listing"}) from None
        items: list[Schedule] = []
        while len(items) < limit:
            ids = await self.db.ids(offset, limit - len(items))
            if not ids:
                return SchedulePage(items, None)
            offset += len(ids)
            found = await self.db.get_many(ids)
            items += [s for s in found if s is not None and (include_deleted or not s.deleted)]
        return SchedulePage(items, str(offset))

    async def next_runs(self, schedule_id: str, n: int = 10) -> list[tuple[datetime, datetime]]:
        """The next ``n`` fire times as ``(UTC, local in the schedule's timezone)``.

        For an active schedule they start at its stored next fire time; for a paused or deleted one they
        are the times it would fire if resumed now.
        """
        schedule = await self.require(schedule_id)
        spec = parse_schedule(schedule.cron, schedule.timezone)
        if schedule.is_active and not schedule.deleted and schedule.next_run_at is not None:
            first = from_ms(schedule.next_run_at)
            fires = [first, *spec.next_fires(first, n - 1)] if n > 0 else []
        else:
            fires = spec.next_fires(from_ms(await self.db.now_ms()), n)
        zone = ZoneInfo(schedule.timezone)
        return [(fire, fire.astimezone(zone)) for fire in fires]

    async def history(self, schedule_id: str, *, limit: int = 20, cursor: str | None = None) -> HistoryPage:
        """Runs newest first with each job's outcome; ``cursor`` is the previous page's ``next_cursor``."""
        await self.require(schedule_id)
        try:
            before = int(cursor) if cursor else None
        except ValueError:
            raise ValidationError("bad cursor", {"cursor": "not a cursor returned by this listing"}) from None
        runs = await self.db.runs(schedule_id, limit, before)
        jobs = await self.db.jobs(runs)
        items = []
        for run, job in zip(runs, jobs, strict=True):
            if job is None:
                items.append(HistoryEntry(run.fire_ms, run.job_id, run.queue, "expired"))
                continue
            duration = job.finished_at - job.started_at if job.finished_at and job.started_at else None
            items.append(
                HistoryEntry(
                    fire_time=run.fire_ms,
                    job_id=job.id,
                    queue=job.queue,
                    outcome=job.status.value,
                    attempt=job.attempt,
                    created_at=job.created_at,
                    started_at=job.started_at,
                    finished_at=job.finished_at,
                    duration_ms=duration,
                    lateness_ms=job.created_at - run.fire_ms if job.created_at is not None else None,
                    error={"type": job.last_error.type, "message": job.last_error.message} if job.last_error else None,
                )
            )
        next_cursor = str(runs[-1].fire_ms) if runs and len(runs) == limit else None
        return HistoryPage(items, next_cursor)

    # -- change -------------------------------------------------------------------------------
    async def update(self, schedule_id: str, **changes: Any) -> Schedule:
        """Change any of cron, timezone, the job template (type, payload, queue, priority, max_retries,
        timeout, execution, backoff), misfire, max_catch_up, overlap, is_active, name, description.

        A new cron or timezone, or a resume (``is_active=True``, which also undoes a soft delete), sets the
        next fire time to the first one after now; otherwise the pending next fire time is kept.
        """
        unknown = set(changes) - TEMPLATE_FIELDS - SCHEDULE_FIELDS
        if unknown:
            raise ValidationError(
                f"unknown schedule field(s): {', '.join(sorted(unknown))}",
                dict.fromkeys(sorted(unknown), "unknown field"),
            )
        for _ in range(_SAVE_ATTEMPTS):
            current = await self.require(schedule_id)
            template = {**current.template.to_dict(), **{k: v for k, v in changes.items() if k in TEMPLATE_FIELDS}}
            options = {
                **{name: getattr(current, name) for name in SCHEDULE_FIELDS},
                **{k: v for k, v in changes.items() if k in SCHEDULE_FIELDS},
            }
            new = self.build(template, options, schedule_id)
            resumed = new.is_active and (not current.is_active or current.deleted)
            new = new.with_changes(
                deleted=current.deleted and not resumed, deleted_at=None if resumed else current.deleted_at
            )
            recompute = resumed or (new.cron, new.timezone) != (current.cron, current.timezone)
            next_run = await self._next_after_now(new) if recompute else None
            code, _ = await self.db.save(new, mode="update", expected_version=current.version, next_run_at=next_run)
            if code is ScheduleSaveCode.NO_SUCH_SCHEDULE:
                raise JobNotFound(schedule_id)
            if code is ScheduleSaveCode.SAVED:
                return await self.require(schedule_id)
        raise ValidationError("schedule is being changed concurrently; try again", {"id": "concurrent update"})

    async def pause(self, schedule_id: str) -> Schedule:
        """Stop firing until resumed (occurrences while paused are not run later)."""
        return await self.update(schedule_id, is_active=False)

    async def resume(self, schedule_id: str) -> Schedule:
        """Fire again from the next occurrence after now (also undoes a soft delete)."""
        return await self.update(schedule_id, is_active=True)

    async def delete(self, schedule_id: str) -> Schedule:
        """Soft delete: the schedule stops, ``deleted_at`` is set, its history is kept; ``resume`` undoes it."""
        if (
            not SCHEDULE_ID_RE.match(schedule_id)
            or await self.db.delete(schedule_id) is ScheduleDeleteCode.NO_SUCH_SCHEDULE
        ):
            raise JobNotFound(schedule_id)
        return await self.require(schedule_id)

    async def _next_after_now(self, schedule: Schedule) -> int:
        return next_fire_ms(self._spec(schedule), await self.db.now_ms())

    @staticmethod
    def _spec(schedule: Schedule) -> CronSpec:
        return parse_schedule(schedule.cron, schedule.timezone)


def _same_definition(a: Schedule, b: Schedule) -> bool:
    keys = ("cron", "timezone", "template", "misfire", "max_catch_up", "overlap", "name", "description")
    return all(getattr(a, k) == getattr(b, k) for k in keys)
