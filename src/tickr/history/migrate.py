"""Alembic run from code on a ``HistoryDB``: upgrade to head, the SQL for a DBA, and the start-up schema check.

Users need no alembic.ini: the ``Config`` is built here, ``script_location`` is the package's ``migrations/``.
Several processes may upgrade one database at once (``tickr up`` starts several): PostgreSQL serialises them
with a transaction-scoped advisory lock, SQLite with ``BEGIN IMMEDIATE`` (the second waits on busy_timeout);
the one that waited then finds the schema at head and does nothing.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from tickr.core.errors import ConfigError
from tickr.history.database import HistoryDB

MIGRATIONS = Path(__file__).with_name("migrations")
# pg_advisory_xact_lock key of the upgrade (b"tickrmig" as a signed 64-bit integer): one per database.
ADVISORY_LOCK_KEY = int.from_bytes(b"tickrmig", "big", signed=True)


class SchemaBehind(ConfigError):
    """The history database is not at the revision this tickr needs, and auto-migrate is off."""

    def __init__(self, database: str, current: str | None, wanted: str) -> None:
        at = f"revision {current}" if current else "no revision (empty)"
        super().__init__(
            f"history database {database} is at {at}, this tickr needs revision {wanted}: "
            "run `tickr migrate` or set TICKR_AUTO_MIGRATE=true"
        )
        self.current = current
        self.wanted = wanted


def _config(**attributes: Any) -> Config:
    config = Config(output_buffer=attributes.pop("output_buffer", None))
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.attributes.update(attributes)
    return config


def head_revision() -> str:
    """The newest revision the package ships."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None, "no migrations in the package"
    return head


def offline_sql(url: str) -> str:
    """The whole upgrade (empty database to head) as SQL in the dialect of ``url``; connects to nothing."""
    buffer = io.StringIO()
    command.upgrade(_config(url=url, output_buffer=buffer), "head", sql=True)
    return buffer.getvalue()


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _upgrade(connection: Connection) -> None:
    command.upgrade(_config(connection=connection), "head")


async def current_revision(db: HistoryDB) -> str | None:
    """The revision the database is at (None: never migrated)."""
    async with db.engine.connect() as connection:
        return await connection.run_sync(_current)


async def upgrade(db: HistoryDB) -> None:
    """Upgrade the database to head in one transaction, safe to call from several processes at once."""
    async with db.engine.connect() as connection:
        if db.is_sqlite:
            # pysqlite would run the DDL outside any transaction; take the write lock before reading the version.
            await connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
        await connection.run_sync(_upgrade)
        await connection.commit()


async def ensure_schema(db: HistoryDB, *, auto_migrate: bool) -> None:
    """Upgrade when ``auto_migrate``; otherwise raise ``SchemaBehind`` unless the database is at head."""
    if auto_migrate:
        await upgrade(db)
        return
    current, wanted = await current_revision(db), head_revision()
    if current != wanted:
        raise SchemaBehind(db.describe(), current, wanted)
