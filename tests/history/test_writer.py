"""The writer on both databases: batched upserts, replayed batches, out-of-order batches, fill-in of fields."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import select, text

from tests.history.test_projection import T0, Q, err, ev, record
from tickr.core.events import StreamEvent
from tickr.core.job import JobError, JobState
from tickr.history.database import HistoryDB
from tickr.history.projection import project
from tickr.history.schema import job_runs, jobs, schedules
from tickr.history.writer import write


async def rows(db: HistoryDB, table: Any) -> list[dict[str, Any]]:
    async with db.engine.connect() as conn:
        return [dict(r._mapping) for r in await conn.execute(select(table).order_by(*table.primary_key.columns))]


async def snapshot(db: HistoryDB) -> tuple[list[dict[str, Any]], ...]:
    return (await rows(db, jobs), await rows(db, job_runs), await rows(db, schedules))


def lifecycle(job_id: str, start: int = 0) -> list[StreamEvent]:
    """Enqueued, failed once, succeeded on the second attempt."""
    t = start
    return [
        ev("queued", t, job_id),
        ev("active", t + 10, job_id, attempt=1, worker="w1", due=t),
        ev("retrying", t + 20, job_id, attempt=1, started=t + 10, worker="w1", error=err(), due=t + 30),
        ev("active", t + 31, job_id, attempt=2, worker="w2", due=t + 30),
        ev("succeeded", t + 41, job_id, attempt=2, started=t + 31, worker="w2"),
    ]


def done(job_id: str) -> Any:
    return record(
        id=job_id,
        status=JobState.SUCCEEDED,
        attempt=2,
        worker="w2",
        started_at=T0 + 31,
        finished_at=T0 + 41,
        result={"sent": 1},
    )


async def test_a_batch_is_upserted(migrated_db: HistoryDB) -> None:
    events = lifecycle("j1") + lifecycle("j2", 100)
    await write(migrated_db, project(events, {(Q, "j1"): done("j1"), (Q, "j2"): None}))
    job_rows, run_rows, _ = await snapshot(migrated_db)
    assert [(r["id"], r["status"], r["attempt"]) for r in job_rows] == [("j1", "succeeded", 2), ("j2", "succeeded", 2)]
    assert job_rows[0]["payload"] == {"to": "a@b"} and job_rows[0]["result"] == {"sent": 1}
    assert job_rows[1]["payload"] is None and job_rows[1]["type"] is None  # record gone: SQL NULL, not JSON null
    assert [(r["job_id"], r["attempt"], r["outcome"], r["duration_ms"], r["lateness_ms"]) for r in run_rows] == [
        ("j1", 1, "failed", 10, 10),
        ("j1", 2, "succeeded", 10, 1),
        ("j2", 1, "failed", 10, 10),
        ("j2", 2, "succeeded", 10, 1),
    ]
    assert run_rows[0]["error_type"] == "ValueError" and run_rows[0]["error_traceback"] == "Traceback ..."
    async with migrated_db.engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM jobs WHERE payload IS NULL")) == 1


async def test_replaying_a_batch_changes_nothing(migrated_db: HistoryDB) -> None:
    events = lifecycle("j1")
    projection = project(events, {(Q, "j1"): done("j1")})
    await write(migrated_db, projection)
    before = await snapshot(migrated_db)
    await write(migrated_db, projection)
    await write(migrated_db, project(events[2:], {(Q, "j1"): done("j1")}))  # a replayed part of it, too
    assert await snapshot(migrated_db) == before


async def test_an_older_batch_after_a_newer_one_moves_nothing_backwards(migrated_db: HistoryDB) -> None:
    events = lifecycle("j1")
    older, newer = events[:3], events[3:]
    await write(migrated_db, project(newer, {(Q, "j1"): done("j1")}))
    after_newer = await snapshot(migrated_db)
    stale_record = record(status=JobState.RETRYING, attempt=1, last_error=JobError("ValueError", "boom"))
    await write(migrated_db, project(older, {(Q, "j1"): stale_record}))
    job_rows, run_rows, _ = await snapshot(migrated_db)
    assert job_rows == after_newer[0]  # the job row ignores the older batch entirely
    assert job_rows[0]["status"] == "succeeded" and job_rows[0]["error_type"] is None
    by_attempt = {r["attempt"]: r for r in run_rows}
    assert by_attempt[2] == after_newer[1][0]  # attempt 2 untouched
    assert by_attempt[1]["outcome"] == "failed"  # attempt 1 arrives from the older batch, complete
    assert by_attempt[1]["due_at"] == T0 and by_attempt[1]["lateness_ms"] == 10


async def test_an_older_event_fills_in_what_a_newer_one_lacked(migrated_db: HistoryDB) -> None:
    active = ev("active", 10, attempt=1, worker="w1", due=5)
    reaped = ev("queued", 90, attempt=1, reaped=1)
    await write(migrated_db, project([reaped], {}))
    (run,) = await rows(migrated_db, job_runs)
    assert (run["outcome"], run["worker"], run["started_at"], run["duration_ms"]) == ("lost", None, None, None)
    await write(migrated_db, project([active], {}))
    (run,) = await rows(migrated_db, job_runs)
    assert (run["outcome"], run["finished_at"], run["error_type"]) == ("lost", T0 + 90, "LeaseExpired")
    assert (run["worker"], run["started_at"], run["due_at"]) == ("w1", T0 + 10, T0 + 5)
    assert (run["duration_ms"], run["lateness_ms"], run["event_seq"]) == (80, 5, reaped.seq)


async def test_a_batch_without_the_record_keeps_the_known_fields(migrated_db: HistoryDB) -> None:
    events = lifecycle("j1")
    await write(migrated_db, project(events[:2], {(Q, "j1"): record(status=JobState.ACTIVE, attempt=1, name="nm")}))
    await write(migrated_db, project(events[2:], {(Q, "j1"): None}))
    (row,) = await rows(migrated_db, jobs)
    assert (row["status"], row["type"], row["name"], row["payload"]) == ("succeeded", "email.send", "nm", {"to": "a@b"})
    assert (row["attempt"], row["worker"], row["finished_at"]) == (2, "w2", T0 + 41)


async def test_a_present_record_is_mirrored_even_where_it_cleared_a_field(migrated_db: HistoryDB) -> None:
    dead = record(status=JobState.DEAD, attempt=3, worker="w1", finished_at=T0 + 5)
    await write(migrated_db, project([ev("dead", 5, attempt=3, error=err())], {(Q, "j1"): dead}))
    replayed = record(status=JobState.QUEUED, attempt=0, scheduled_for=T0 + 9)  # replay clears worker, finish
    await write(migrated_db, project([ev("queued", 9, replayed=1)], {(Q, "j1"): replayed}))
    (row,) = await rows(migrated_db, jobs)
    assert (row["status"], row["attempt"], row["worker"], row["finished_at"]) == ("queued", 0, None, None)


async def test_a_refunded_attempt_run_again_replaces_the_released_run(migrated_db: HistoryDB) -> None:
    await write(migrated_db, project([ev("active", 10, attempt=1, worker="w1", due=5)], {}))
    await write(migrated_db, project([ev("queued", 20, attempt=1, released=1)], {}))
    await write(migrated_db, project([ev("active", 30, attempt=1, worker="w2", due=20)], {}))
    (run,) = await rows(migrated_db, job_runs)
    assert (run["outcome"], run["worker"], run["started_at"], run["finished_at"]) == ("running", "w2", T0 + 30, None)
    assert (run["duration_ms"], run["lateness_ms"]) == (None, 10)


async def test_schedule_audit_rows_are_insert_only(migrated_db: HistoryDB) -> None:
    saved = ev("saved", 1, "s1", queue="", version=1, definition=orjson.dumps({"cron": "@daily"}).decode())
    await write(migrated_db, project([saved, ev("deleted", 2, "s1", queue="", version=1)], {}))
    await write(migrated_db, project([saved], {}))
    assert [(r["action"], r["definition"]) for r in await rows(migrated_db, schedules)] == [
        ("saved", {"cron": "@daily"}),
        ("deleted", None),
    ]


async def test_a_large_batch_is_written_in_chunks(migrated_db: HistoryDB) -> None:
    events = [e for i in range(1_500) for e in lifecycle(f"job-{i:05}", i)]
    records = {(Q, f"job-{i:05}"): done(f"job-{i:05}") if i % 2 else None for i in range(1_500)}
    await write(migrated_db, project(events, records))
    async with migrated_db.engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM jobs")) == 1_500
        assert await conn.scalar(text("SELECT count(*) FROM job_runs WHERE outcome = 'succeeded'")) == 1_500


async def test_a_nul_character_in_a_payload_never_stalls_the_sink(migrated_db: HistoryDB) -> None:
    """Valid JSON may hold \\u0000; PostgreSQL refuses it in JSONB and text, so it is written as U+FFFD there."""
    events = [ev("queued", 0, "j1"), ev("dead", 5, "j1", attempt=1, started=1, worker="w1", error=err("E", "a\x00b"))]
    await write(migrated_db, project(events, {(Q, "j1"): record(payload={"text": "x\x00y"})}))
    [job] = await rows(migrated_db, jobs)
    [run] = await rows(migrated_db, job_runs)
    expected = "x\x00y" if migrated_db.is_sqlite else "x\ufffdy"
    assert job["payload"] == {"text": expected}
    assert run["error_message"] == ("a\x00b" if migrated_db.is_sqlite else "a\ufffdb")
