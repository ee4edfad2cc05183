"""Migrations on both databases: up from empty, no drift from ``schema.py``, offline SQL, the start-up check,
and several processes upgrading one database at once."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect, text

from tickr.history import migrate
from tickr.history.database import HistoryDB
from tickr.history.schema import metadata

TABLES = {"jobs", "job_runs", "schedules", "alembic_version"}


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


def _drift(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True, "compare_server_default": True})
    return list(compare_metadata(context, metadata))


async def test_upgrade_from_empty_to_head_and_again(history_db: HistoryDB) -> None:
    assert await migrate.current_revision(history_db) is None
    await migrate.upgrade(history_db)
    assert await migrate.current_revision(history_db) == migrate.head_revision()
    await migrate.upgrade(history_db)  # at head: nothing to do
    async with history_db.engine.connect() as conn:
        assert await conn.run_sync(_tables) >= TABLES
    if not history_db.is_sqlite:  # the version table lives in the database's schema, like the tables
        async with history_db.engine.connect() as conn:
            where = await conn.scalar(
                text(
                    "SELECT table_schema FROM information_schema.tables WHERE table_name = "
                    "'alembic_version' AND table_schema = current_schema()"
                )
            )
        assert where == history_db.schema


async def test_the_migrations_match_the_models(migrated_db: HistoryDB) -> None:
    """``alembic check``: autogenerate against the migrated database finds nothing to do."""
    async with migrated_db.engine.connect() as conn:
        assert await conn.run_sync(_drift) == []


@pytest.mark.parametrize(
    ("url", "dialect_marks"),
    [
        ("postgresql+asyncpg://nobody@db.invalid/tickr", ("JSONB", "BEGIN;", "COMMIT;")),
        ("sqlite+aiosqlite:///nowhere/history.db", ("JSON",)),
    ],
)
def test_offline_sql_is_the_whole_upgrade_and_connects_to_nothing(url: str, dialect_marks: tuple[str, ...]) -> None:
    sql = migrate.offline_sql(url)
    for table in ("jobs", "job_runs", "schedules", "alembic_version"):
        assert f"CREATE TABLE {table} (" in sql
    assert "CREATE INDEX ix_jobs_status_created_at_id ON jobs (status, created_at, id);" in sql
    assert f"INSERT INTO alembic_version (version_num) VALUES ('{migrate.head_revision()}')" in sql
    for mark in dialect_marks:
        assert mark in sql


async def test_ensure_schema_refuses_a_database_behind_unless_auto_migrate(history_db: HistoryDB) -> None:
    with pytest.raises(migrate.SchemaBehind) as caught:
        await migrate.ensure_schema(history_db, auto_migrate=False)
    message = str(caught.value)
    assert "no revision" in message
    assert f"needs revision {migrate.head_revision()}" in message
    assert "run `tickr migrate` or set TICKR_AUTO_MIGRATE=true" in message
    assert caught.value.current is None and caught.value.wanted == migrate.head_revision()

    await migrate.ensure_schema(history_db, auto_migrate=True)
    assert await migrate.current_revision(history_db) == migrate.head_revision()
    await migrate.ensure_schema(history_db, auto_migrate=False)  # at head: accepted


async def test_ensure_schema_names_the_revision_the_database_is_at(migrated_db: HistoryDB) -> None:
    async with migrated_db.engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = '0000'"))
    with pytest.raises(migrate.SchemaBehind, match="is at revision 0000, this tickr needs revision"):
        await migrate.ensure_schema(migrated_db, auto_migrate=False)


UPGRADER = """
import asyncio, sys, time
from tickr.history import migrate
from tickr.history.database import HistoryDB

async def main(url, schema, start):
    db = HistoryDB(url, schema=schema or None)
    time.sleep(max(0.0, start - time.time()))  # every process starts its upgrade at the same moment
    try:
        await migrate.upgrade(db)
    finally:
        await db.close()

asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
"""


async def test_concurrent_upgrades_from_several_processes(history_db: HistoryDB) -> None:
    start = time.time() + 3.0
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", UPGRADER, history_db.url, history_db.schema or "", str(start)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    for process in processes:
        _, stderr = await asyncio.to_thread(process.communicate, timeout=60)
        assert process.returncode == 0, stderr[-3000:]
    assert await migrate.current_revision(history_db) == migrate.head_revision()
    async with history_db.engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM alembic_version")) == 1
        assert await conn.run_sync(_drift) == []


async def test_concurrent_upgrades_in_one_process(history_db: HistoryDB) -> None:
    others = [HistoryDB(history_db.url, schema=history_db.schema) for _ in range(3)]
    try:
        await asyncio.gather(*(migrate.upgrade(db) for db in [history_db, *others]))
    finally:
        for db in others:
            await db.close()
    assert await migrate.current_revision(history_db) == migrate.head_revision()
