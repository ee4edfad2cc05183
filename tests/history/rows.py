"""Rows for the history tables, written the way the sink would, so query and route tests need no sink."""

from __future__ import annotations

import itertools
import os
import socket
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url

from tickr.history import migrate
from tickr.history.database import SQLITE_FILE, HistoryDB
from tickr.history.schema import job_runs, jobs, metadata

PG_URL = os.environ.get("TICKR_TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
PG_ADDRESS = (make_url(PG_URL).host or "127.0.0.1", make_url(PG_URL).port or 5432)
_seq = itertools.count(1)


def create_sqlite_schema(data_dir: Path) -> Path:
    """Create the history tables in ``<data_dir>/history.db`` (what ``tickr migrate`` does), synchronously."""
    path = data_dir / SQLITE_FILE
    engine = create_engine(f"sqlite:///{path}")
    metadata.create_all(engine)
    engine.dispose()
    return path


def job_row(**fields: Any) -> dict[str, Any]:
    """A ``jobs`` row: a finished job of type ``noop`` on queue ``default`` unless ``fields`` say otherwise."""
    row: dict[str, Any] = dict.fromkeys(jobs.c.keys())
    row |= {
        "id": str(uuid.uuid4()),
        "queue": "default",
        "type": "noop",
        "status": "succeeded",
        "priority": "default",
        "payload": {"n": 1},
        "attempt": 1,
        "max_retries": 3,
        "execution": "at_least_once",
        "created_at": 1_800_000_000_000,
        "updated_at": 1_800_000_000_000,
        "event_seq": next(_seq),
    }
    row.update(fields)
    return row


def run_row(job_id: str, attempt: int, **fields: Any) -> dict[str, Any]:
    """A ``job_runs`` row: a succeeded attempt unless ``fields`` say otherwise."""
    row: dict[str, Any] = dict.fromkeys(job_runs.c.keys())
    row |= {
        "job_id": job_id,
        "lease": attempt,  # one lease per attempt unless ``fields`` say otherwise
        "attempt": attempt,
        "queue": "default",
        "type": "noop",
        "outcome": "succeeded",
        "worker": "w1",
        "due_at": 1_800_000_000_000,
        "started_at": 1_800_000_000_010,
        "finished_at": 1_800_000_000_030,
        "duration_ms": 20,
        "lateness_ms": 10,
        "event_seq": next(_seq),
    }
    row.update(fields)
    return row


async def insert_rows(
    db: HistoryDB, job_rows: Sequence[dict[str, Any]], run_rows: Sequence[dict[str, Any]] = ()
) -> None:
    async with db.engine.begin() as conn:
        if job_rows:
            await conn.execute(insert(jobs), list(job_rows))
        if run_rows:
            await conn.execute(insert(job_runs), list(run_rows))


def postgres_answers() -> bool:
    try:
        with socket.create_connection(PG_ADDRESS, timeout=0.5):
            return True
    except OSError:
        return False


@asynccontextmanager
async def history_database(kind: str, tmp_path: Path) -> AsyncIterator[HistoryDB]:
    """A history database migrated to head: SQLite in ``tmp_path``, or PostgreSQL in a fresh schema
    (dropped afterwards). A missing PostgreSQL skips locally and fails in CI."""
    if kind == "sqlite":
        db = HistoryDB(f"sqlite+aiosqlite:///{tmp_path / 'queries.db'}")
        await migrate.upgrade(db)
        try:
            yield db
        finally:
            await db.close()
        return
    if not postgres_answers():
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"no PostgreSQL at {PG_URL}")
        pytest.skip(f"no PostgreSQL at {PG_URL}")
    schema = f"tq_{uuid.uuid4().hex[:12]}"
    admin = HistoryDB(PG_URL)
    async with admin.engine.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    db = HistoryDB(PG_URL, schema=schema)
    try:
        await migrate.upgrade(db)
        yield db
    finally:
        await db.close()
        async with admin.engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.close()
