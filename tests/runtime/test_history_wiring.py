"""The history's place in a process: auto-migrate defaults, refusing a schema that is behind."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from tickr.config import Settings
from tickr.core.errors import ConfigError
from tickr.history import migrate
from tickr.runtime.history import auto_migrate, open_history


def test_auto_migrate_is_on_for_the_embedded_sqlite_and_off_for_a_named_database(tmp_path: Path) -> None:
    assert auto_migrate(Settings(data_dir=tmp_path)) is True
    assert auto_migrate(Settings(data_dir=tmp_path, database_url=SecretStr("postgresql://db/x"))) is False
    assert auto_migrate(Settings(data_dir=tmp_path, database_url=SecretStr("postgresql://db/x"), auto_migrate=True))


async def test_a_schema_behind_is_refused_with_what_to_do_unless_auto_migrate(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="tickr migrate"):
        await open_history(Settings(data_dir=tmp_path, auto_migrate=False))
    db = await open_history(Settings(data_dir=tmp_path))  # the embedded SQLite: migrated at start
    try:
        assert await migrate.current_revision(db) == migrate.head_revision()
    finally:
        await db.close()
    db = await open_history(Settings(data_dir=tmp_path, auto_migrate=False))  # now at head: accepted
    await db.close()


async def test_an_unsupported_database_url_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unsupported database"):
        await open_history(Settings(data_dir=tmp_path, database_url=SecretStr("mysql://db/x")))
