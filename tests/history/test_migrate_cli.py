"""``tickr migrate`` from the command line: apply (from/to revision), ``--sql``, ``--check``, bad URLs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tickr.cli.main import cli
from tickr.history.migrate import head_revision

runner = CliRunner()
Invoke = Callable[..., tuple[str, str]]


@pytest.fixture
def tickr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    monkeypatch.setenv("TICKR_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("TICKR_DATABASE_URL", raising=False)

    def invoke(*args: str, code: int = 0, env: dict[str, str] | None = None) -> tuple[str, str]:
        result = runner.invoke(cli, ["migrate", *args], env=env)
        assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
        return result.stdout, result.stderr

    return invoke


def test_migrate_applies_then_reports_at_head_and_check_agrees(tickr: Invoke, tmp_path: Path) -> None:
    head = head_revision()
    _, err = tickr("--check", code=1)
    assert f"is at no revision, head is {head}" in err

    out, _ = tickr()
    assert f"migrated from empty to {head}" in out and str(tmp_path / "history.db") in out
    out, _ = tickr()
    assert f"already at {head}" in out
    out, _ = tickr("--check")
    assert f"at head ({head})" in out


def test_sql_prints_the_upgrade_and_touches_nothing(tickr: Invoke, tmp_path: Path) -> None:
    out, _ = tickr("--sql")
    assert "CREATE TABLE jobs (" in out and "INSERT INTO alembic_version" in out
    assert not (tmp_path / "history.db").exists()
    out, _ = tickr("--sql", env={"TICKR_DATABASE_URL": "postgresql://dba@db.invalid:5432/tickr"})
    assert "JSONB" in out and "BEGIN;" in out


@pytest.mark.parametrize("url", ["mysql://u@h/db", "this is not a url"])
def test_a_bad_url_is_a_usage_error(tickr: Invoke, url: str) -> None:
    _, err = tickr(code=2, env={"TICKR_DATABASE_URL": url})
    assert err.startswith("error: TICKR_DATABASE_URL:")


def test_an_unreachable_database_fails_with_exit_1(tickr: Invoke) -> None:
    _, err = tickr(code=1, env={"TICKR_DATABASE_URL": "postgresql://u@127.0.0.1:1/db"})
    assert "history database postgresql+asyncpg://u@127.0.0.1:1/db unavailable" in err
