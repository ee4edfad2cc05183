"""Delete history rows older than a cutoff, in small batches, each its own short transaction.

Never one long transaction: a sink deleting a month of rows must not hold locks (PostgreSQL) or the write
lock (SQLite) for longer than one batch, so its own inserts and the API's reads go on in between.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Delete, and_, delete, select, tuple_

from tickr.history.database import HistoryDB
from tickr.history.schema import job_runs, jobs, schedules


def _statements(cutoff_ms: int, batch: int) -> list[Delete]:
    def runs_where(condition: ColumnElement[bool]) -> Delete:
        doomed = select(job_runs.c.job_id, job_runs.c.attempt).where(condition).limit(batch)
        return delete(job_runs).where(tuple_(job_runs.c.job_id, job_runs.c.attempt).in_(doomed))

    return [
        delete(jobs).where(jobs.c.id.in_(select(jobs.c.id).where(jobs.c.updated_at < cutoff_ms).limit(batch))),
        runs_where(job_runs.c.started_at < cutoff_ms),  # ix_job_runs_started_at
        runs_where(and_(job_runs.c.started_at.is_(None), job_runs.c.finished_at < cutoff_ms)),
        delete(schedules).where(
            tuple_(schedules.c.schedule_id, schedules.c.event_seq).in_(
                select(schedules.c.schedule_id, schedules.c.event_seq).where(schedules.c.at < cutoff_ms).limit(batch)
            )
        ),
    ]


async def delete_older_than(db: HistoryDB, cutoff_ms: int, *, batch: int = 1000) -> int:
    """Delete jobs, runs and schedule audit rows older than ``cutoff_ms``; returns how many rows went."""
    total = 0
    for statement in _statements(cutoff_ms, batch):
        while True:
            async with db.engine.begin() as connection:
                deleted = (await connection.execute(statement)).rowcount
            total += deleted
            if deleted < batch:
                break
    return total
