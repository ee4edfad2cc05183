"""Retention on both databases: rows older than the cutoff go, in batches of its own transaction each."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, insert, select

from tickr.history.database import HistoryDB
from tickr.history.retention import delete_older_than
from tickr.history.schema import job_runs, jobs, schedules

CUT = 1_800_000_000_000


def job(i: int, updated_at: int) -> dict[str, Any]:
    return {
        "id": f"j{i:04}",
        "queue": "q",
        "status": "succeeded",
        "attempt": 1,
        "updated_at": updated_at,
        "event_seq": i,
    }


def run(i: int, started: int | None, finished: int | None) -> dict[str, Any]:
    return {
        "job_id": f"j{i:04}",
        "lease": 1,
        "attempt": 1,
        "queue": "q",
        "outcome": "succeeded",
        "started_at": started,
        "finished_at": finished,
        "event_seq": i,
    }


async def ids(db: HistoryDB, column: Any) -> list[Any]:
    async with db.engine.connect() as conn:
        return list((await conn.scalars(select(column).order_by(column))).all())


async def test_old_rows_go_and_recent_ones_stay(migrated_db: HistoryDB) -> None:
    old, new = CUT - 1, CUT
    async with migrated_db.engine.begin() as conn:
        await conn.execute(insert(jobs), [job(i, old if i < 25 else new) for i in range(30)])
        await conn.execute(
            insert(job_runs),
            [run(i, old, old) for i in range(10)]  # started before the cutoff
            + [run(i, None, old) for i in range(10, 15)]  # never started: its finish decides
            + [run(i, None, new) for i in range(15, 18)]
            + [run(i, new, new) for i in range(18, 30)],
        )
        await conn.execute(
            insert(schedules),
            [{"schedule_id": "s", "event_seq": i, "action": "saved", "at": old if i < 3 else new} for i in range(5)],
        )
    assert await delete_older_than(migrated_db, CUT, batch=4) == 25 + 15 + 3
    assert await ids(migrated_db, jobs.c.id) == [f"j{i:04}" for i in range(25, 30)]
    assert await ids(migrated_db, job_runs.c.job_id) == [f"j{i:04}" for i in range(15, 30)]
    assert await ids(migrated_db, schedules.c.event_seq) == [3, 4]
    assert await delete_older_than(migrated_db, CUT) == 0


async def test_each_batch_is_its_own_short_transaction(migrated_db: HistoryDB) -> None:
    async with migrated_db.engine.begin() as conn:
        await conn.execute(insert(jobs), [job(i, CUT - 1) for i in range(10)])
    commits: list[int] = []
    event.listen(migrated_db.engine.sync_engine, "commit", lambda _conn: commits.append(1))
    assert await delete_older_than(migrated_db, CUT, batch=3) == 10
    # jobs: 3 + 3 + 3 + 1; then one (empty) pass each over runs (started, never started) and schedules
    assert len(commits) == 4 + 3
