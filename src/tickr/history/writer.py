"""Write a ``Projection`` in one transaction: batched upserts whose guards only ever move a row forward.

``jobs``: a row changes only when the batch is newer (``excluded.event_seq > jobs.event_seq``); a batch whose
Redis record was gone (``excluded.type IS NULL``) keeps the stored record fields it does not know.
``job_runs``: the outcome columns follow the newer event; the facts of the run (worker, start, due) fill in,
the newer non-null value winning; duration and lateness are recomputed from the merged values.
``schedules``: an audit log, insert-only. Rows are sorted by key, so concurrent sinks lock in one order.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import JSON, Column, ColumnElement, Insert, Table, bindparam, case, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.types import TypeEngine

from tickr.history.database import HistoryDB
from tickr.history.projection import RECORD_COLUMNS, RUN_FILL_IN, RUN_OUTCOME, Projection
from tickr.history.schema import job_runs, jobs, schedules

ROWS_PER_CALL = 1_000


async def write(db: HistoryDB, projection: Projection) -> None:
    """Upsert every row of ``projection`` in one transaction (replaying a batch changes nothing).

    PostgreSQL refuses NUL characters in text and JSONB (valid JSON can hold ``\\u0000``): a batch it refuses
    for that is written again with each NUL replaced by U+FFFD, so one such payload never stalls the sink.
    """
    if not len(projection):
        return
    try:
        await _write(db, projection)
    except DBAPIError as exc:  # asyncpg reports the NUL as a plain DBAPIError, not a DataError
        if db.is_sqlite or exc.connection_invalidated:
            raise
        cleaned = without_nul(projection)
        if cleaned == projection:
            raise
        await _write(db, cleaned)


async def _write(db: HistoryDB, projection: Projection) -> None:
    async with db.engine.begin() as connection:
        for table, rows, keys in (
            (jobs, projection.jobs, ("id",)),
            (job_runs, projection.runs, ("job_id", "lease")),
            (schedules, projection.schedules, ("schedule_id", "event_seq")),
        ):
            if rows:
                ordered = sorted(rows, key=lambda r: tuple(r[k] for k in keys))
                statement = _statement(table, db.dialect)
                names = [c.name for c in table.columns]
                for start in range(0, len(ordered), ROWS_PER_CALL):
                    chunk = ordered[start : start + ROWS_PER_CALL]
                    await connection.execute(statement, [{n: row.get(n) for n in names} for row in chunk])


def without_nul(projection: Projection) -> Projection:
    """``projection`` with every NUL in its strings (JSON documents included) replaced by U+FFFD."""
    return Projection(
        jobs=[_clean(row) for row in projection.jobs],
        runs=[_clean(row) for row in projection.runs],
        schedules=[_clean(row) for row in projection.schedules],
    )


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _bind_type(column: Column[Any]) -> TypeEngine[Any]:
    if isinstance(column.type, JSON):  # None is SQL NULL here (the plain JSON type would store JSON 'null')
        return JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
    return column.type


@functools.cache
def _statement(table: Table, dialect: str) -> Insert:
    """The upsert of one row, executed with a list of rows (executemany: compiled once, and cached).

    Measured against multi-row ``VALUES`` statements: SQLAlchemy compiles a multi-row VALUES anew on every
    execution (~100 ms for 200 rows; the batch wrote 5-8x slower); executemany compiles once, asyncpg
    pipelines the rows (no round trip per row) and sqlite3 loops in C. Numbers in docs/history.md.
    """
    row = {c.name: bindparam(c.name, type_=_bind_type(c)) for c in table.columns}
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table).values(row)
    return _on_conflict(insert, table, dialect)


def _on_conflict(insert: Any, table: Table, dialect: str) -> Insert:
    excluded = insert.excluded
    if table is jobs:
        return insert.on_conflict_do_update(  # type: ignore[no-any-return]
            index_elements=["id"], set_=_jobs_update(excluded, dialect), where=excluded.event_seq > jobs.c.event_seq
        )
    if table is job_runs:
        return insert.on_conflict_do_update(  # type: ignore[no-any-return]
            index_elements=["job_id", "lease"], set_=_runs_update(excluded, dialect)
        )
    return insert.on_conflict_do_nothing(index_elements=["schedule_id", "event_seq"])  # type: ignore[no-any-return]


def _greatest(dialect: str, *args: ColumnElement[Any]) -> ColumnElement[Any]:
    return func.greatest(*args) if dialect == "postgresql" else func.max(*args)


def _jobs_update(excluded: Any, dialect: str) -> dict[str, ColumnElement[Any]]:
    record_gone = excluded.type.is_(None)
    update: dict[str, ColumnElement[Any]] = {
        name: getattr(excluded, name) for name in ("queue", "status", "updated_at", "event_seq")
    }
    update["attempt"] = case(
        (record_gone, _greatest(dialect, excluded.attempt, jobs.c.attempt)), else_=excluded.attempt
    )
    for name in RECORD_COLUMNS:
        mine = getattr(excluded, name)
        update[name] = case((record_gone, func.coalesce(mine, jobs.c[name])), else_=mine)
    return update


def _runs_update(excluded: Any, dialect: str) -> dict[str, ColumnElement[Any]]:
    newer = excluded.event_seq > job_runs.c.event_seq
    merged: dict[str, ColumnElement[Any]] = {}
    for name in RUN_OUTCOME:
        merged[name] = case((newer, getattr(excluded, name)), else_=job_runs.c[name])
    for name in (*RUN_FILL_IN, "type", "schedule_id"):
        mine, stored = getattr(excluded, name), job_runs.c[name]
        merged[name] = case((newer, func.coalesce(mine, stored)), else_=func.coalesce(stored, mine))
    merged["duration_ms"] = merged["finished_at"] - merged["started_at"]
    merged["lateness_ms"] = merged["started_at"] - merged["due_at"]
    merged["event_seq"] = _greatest(dialect, excluded.event_seq, job_runs.c.event_seq)
    merged["queue"] = case((newer, excluded.queue), else_=job_runs.c.queue)
    return merged
