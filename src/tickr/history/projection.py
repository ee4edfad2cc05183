"""Events of a batch (plus the jobs' current Redis records) -> the rows the writer upserts. Pure: no I/O.

One ``jobs`` row per job, one ``job_runs`` row per (job, lease) (a run: one lease of the job), one
``schedules`` row per schedule event; each row carries ``event_seq`` (the newest event it reflects) so the
writer's guards only ever move a row forward. The rules are documented in ``docs/history.md``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import String, Table

from tickr.core.events import StreamEvent
from tickr.core.job import Job
from tickr.history.schema import job_runs, jobs, schedules

Row = dict[str, Any]

STATUS_OF_EVENT = {
    "queued": "queued",
    "scheduled": "scheduled",
    "parked": "queued",
    "active": "active",
    "succeeded": "succeeded",
    "retrying": "retrying",
    "dead": "dead",
    "lost": "lost",
    "cancelled": "cancelled",
}
FINAL_EVENTS = frozenset({"succeeded", "dead", "lost", "cancelled"})
LEASE_EXPIRED = "LeaseExpired"
SCHEDULES_QUEUE = ""


@dataclass(slots=True)
class Projection:
    """The rows of one batch, keyed by column name of ``schema.py``; at most one row per primary key."""

    jobs: list[Row] = field(default_factory=list)
    runs: list[Row] = field(default_factory=list)
    schedules: list[Row] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.jobs) + len(self.runs) + len(self.schedules)


def project(events: list[StreamEvent], records: dict[tuple[str, str], Job | None]) -> Projection:
    """The rows for ``events``; ``records`` maps (queue, job id) to the job's Redis record (None: gone)."""
    by_job: dict[str, list[StreamEvent]] = {}
    out = Projection()
    for ev in sorted(events, key=lambda e: e.seq):
        if ev.queue == SCHEDULES_QUEUE:
            row = _schedule_row(ev)
            if row is not None:
                out.schedules.append(row)
        elif ev.subject:
            by_job.setdefault(ev.subject, []).append(ev)
    for job_id, evs in by_job.items():
        record = records.get((evs[-1].queue, job_id))
        job_row = _job_row(job_id, evs, record)
        if job_row is not None:
            out.jobs.append(_clip(jobs, job_row))
        out.runs.extend(_clip(job_runs, row) for row in _run_rows(job_id, evs, record))
    return out


def _job_row(job_id: str, evs: list[StreamEvent], record: Job | None) -> Row | None:
    last = evs[-1]
    status = None
    worker = started = finished = None
    attempt = 0
    for ev in evs:
        status = STATUS_OF_EVENT.get(ev.event, status)
        attempt = max(attempt, ev.int_field("attempt") or 0)
        worker = ev.fields.get("worker") or worker
        if ev.event == "active":
            started = ev.at_ms
        elif ev.event == "succeeded" or "error" in ev.fields:
            started = ev.int_field("started") or started
        if ev.event in FINAL_EVENTS:
            finished = ev.at_ms
        elif ev.event in STATUS_OF_EVENT:
            finished = None
    if status is None:
        if record is None:
            return None
        status = record.status.value
    row: Row = {"id": job_id, "queue": last.queue, "status": status, "updated_at": last.at_ms, "event_seq": last.seq}
    if record is None:
        # What the events tell; the writer keeps every other known field (COALESCE with the stored row).
        row.update(dict.fromkeys(RECORD_COLUMNS))
        row.update(attempt=attempt, worker=worker, started_at=started, finished_at=finished)
        # Keyset paging needs a creation time: the first event's time stands in for the record's.
        row["created_at"] = evs[0].at_ms
        return row
    error = record.last_error
    row.update(
        type=record.type,
        priority=record.priority.value,
        payload=record.payload,
        # The record is never older than the batch's events; after a replay (attempt reset to 0) it is the truth.
        attempt=record.attempt,
        max_retries=record.max_retries,
        execution=record.execution.value,
        idempotency_key=record.idempotency_key,
        name=record.name,
        description=record.description,
        schedule_id=record.schedule_id,
        worker=record.worker,
        created_at=record.created_at,
        scheduled_for=record.scheduled_for,
        started_at=record.started_at,
        finished_at=record.finished_at,
        error_type=error.type if error else None,
        error_message=error.message if error else None,
        result=record.result,
    )
    return row


RECORD_COLUMNS = (
    "type",
    "priority",
    "payload",
    "max_retries",
    "execution",
    "idempotency_key",
    "name",
    "description",
    "schedule_id",
    "worker",
    "created_at",
    "scheduled_for",
    "started_at",
    "finished_at",
    "error_type",
    "error_message",
    "result",
)
RUN_FILL_IN = ("worker", "started_at", "due_at")
RUN_OUTCOME = ("outcome", "finished_at", "error_type", "error_message", "error_traceback")


def _run_rows(job_id: str, evs: list[StreamEvent], record: Job | None) -> Iterable[Row]:
    runs: dict[int, Row] = {}
    for ev in evs:
        lease = ev.int_field("lease")
        if lease is None:
            continue
        step = _run_step(ev)
        if step is None:
            continue
        row = runs.get(lease)
        if row is None:
            row = runs[lease] = {
                "job_id": job_id,
                "lease": lease,
                "attempt": ev.int_field("attempt") or 0,
                "queue": ev.queue,
                "type": record.type if record else None,
                "schedule_id": record.schedule_id if record else None,
                **dict.fromkeys(RUN_FILL_IN + RUN_OUTCOME),
            }
        for name in RUN_OUTCOME:  # the later event's outcome wins, with its finish and error (or their absence)
            row[name] = step.get(name)
        for name in RUN_FILL_IN:  # known facts of the run fill in; a later event's value is the newer run's
            if step.get(name) is not None:
                row[name] = step[name]
        row["event_seq"] = ev.seq
    for row in runs.values():
        row["duration_ms"] = _minus(row["finished_at"], row["started_at"])
        row["lateness_ms"] = _minus(row["started_at"], row["due_at"])
    return runs.values()


def _run_step(ev: StreamEvent) -> Row | None:
    """What one event says about its attempt's run, or None when it says nothing."""
    name, fields = ev.event, ev.fields
    worker = fields.get("worker") or None
    if fields.get("reaped") == "1":
        return {"outcome": "lost", "finished_at": ev.at_ms, "error_type": LEASE_EXPIRED}
    if fields.get("released") == "1":
        return {"outcome": "released", "finished_at": ev.at_ms}
    if name == "active":
        return {"outcome": "running", "worker": worker, "started_at": ev.at_ms, "due_at": ev.int_field("due")}
    started = ev.int_field("started")
    if name == "succeeded":
        return {"outcome": "succeeded", "finished_at": ev.at_ms, "started_at": started, "worker": worker}
    if name in ("retrying", "dead"):
        error_type, message, traceback = _parse_error(fields.get("error"))
        return {
            "outcome": "failed",
            "finished_at": ev.at_ms,
            "started_at": started,
            "worker": worker,
            "error_type": error_type,
            "error_message": message,
            "error_traceback": traceback,
        }
    return None


def _parse_error(raw: str | None) -> tuple[str | None, str | None, str | None]:
    if not raw:
        return None, None, None
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None, raw, None
    if not isinstance(doc, dict):
        return None, raw, None
    return _opt_str(doc.get("type")), _opt_str(doc.get("message")), _opt_str(doc.get("traceback"))


def _schedule_row(ev: StreamEvent) -> Row | None:
    if ev.event not in ("saved", "deleted") or not ev.subject:
        return None
    definition = None
    raw = ev.fields.get("definition")
    if raw:
        try:
            definition = orjson.loads(raw)
        except orjson.JSONDecodeError:
            definition = {"unparsed": raw}
    row = {
        "schedule_id": ev.subject,
        "event_seq": ev.seq,
        "action": ev.event,
        "version": ev.int_field("version"),
        "definition": definition,
        "at": ev.at_ms,
    }
    return _clip(schedules, row)


def _opt_str(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


def _minus(a: int | None, b: int | None) -> int | None:
    return a - b if a is not None and b is not None else None


def _lengths(table: Table) -> dict[str, int]:
    return {c.name: c.type.length for c in table.columns if isinstance(c.type, String) and c.type.length}


_LENGTHS = {t.name: _lengths(t) for t in (jobs, job_runs, schedules)}


def _clip(table: Table, row: Row) -> Row:
    """Cut strings to their column's length: PostgreSQL refuses longer ones, and one bad row would stall the sink."""
    for name, length in _LENGTHS[table.name].items():
        value = row.get(name)
        if isinstance(value, str) and len(value) > length:
            row[name] = value[:length]
    return row
