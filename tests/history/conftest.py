"""History fixtures: every test runs on SQLite (a file in tmp_path) and on PostgreSQL (a schema of its own).

``history_db`` is an empty database; ``migrated_db`` is one upgraded to head by ``tickr.history.migrate``.
A missing PostgreSQL skips its half locally and fails it when ``CI=true``.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tickr.history import migrate
from tickr.history.database import HistoryDB

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
PG_URL = os.environ.get("TICKR_TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
DIALECTS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def postgres_answers(url: str = PG_URL) -> bool:
    parsed = make_url(url)
    try:
        with socket.create_connection((parsed.host or "127.0.0.1", parsed.port or 5432), timeout=0.5):
            return True
    except OSError:
        return False


def require_postgres() -> None:
    """Skip (locally) or fail (in CI) when PostgreSQL does not answer."""
    if postgres_answers():
        return
    if IN_CI:
        pytest.fail(f"no PostgreSQL at {PG_URL} (CI=true: PostgreSQL is required)")
    pytest.skip(f"no PostgreSQL at {PG_URL}")


async def create_pg_schema() -> str:
    schema = f"tickr_t_{uuid.uuid4().hex[:8]}"
    admin = HistoryDB(PG_URL)
    try:
        async with admin.engine.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    finally:
        await admin.close()
    return schema


async def drop_pg_schema(schema: str) -> None:
    admin = HistoryDB(PG_URL)
    try:
        async with admin.engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        await admin.close()


@pytest.fixture(params=DIALECTS)
def history_dialect(request: pytest.FixtureRequest) -> str:
    """``sqlite`` or ``postgresql``: the dialect this instance of the test runs on."""
    dialect: str = request.param
    if dialect == "postgresql":
        require_postgres()
    return dialect


@pytest.fixture
async def history_db(history_dialect: str, tmp_path: Path) -> AsyncIterator[HistoryDB]:
    """An empty history database (no tables): SQLite in tmp_path, or a fresh PostgreSQL schema dropped after."""
    if history_dialect == "sqlite":
        db = HistoryDB(f"sqlite+aiosqlite:///{tmp_path / 'history.db'}")
        try:
            yield db
        finally:
            await db.close()
        return
    schema = await create_pg_schema()
    db = HistoryDB(PG_URL, schema=schema)
    try:
        yield db
    finally:
        await db.close()
        await drop_pg_schema(schema)


@pytest.fixture
async def migrated_db(history_db: HistoryDB) -> HistoryDB:
    """``history_db`` upgraded to head (the tables as ``tickr migrate`` creates them)."""
    await migrate.upgrade(history_db)
    return history_db
