"""``tickr schedules ...`` commands: tables and --json, exit codes 0 / 1 (failed) / 2 (bad usage)."""

from __future__ import annotations

import asyncio
import json

import pytest
import typer
from typer.testing import CliRunner

from tickr.app import App
from tickr.cli.schedule_commands import register
from tickr.config import Settings
from tickr.scheduler.manager import Schedules

runner = CliRunner()


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None: ...

    register(app)
    return app


def create(redis_url: str, prefix: str, **options: object) -> str:
    async def go() -> str:
        app = App(settings=Settings(redis_url=redis_url), prefix=prefix)
        try:
            return (await Schedules(app).create("noop", **options)).id  # type: ignore[arg-type]
        finally:
            await app.close()

    return asyncio.run(go())


def test_schedule_commands(cli: typer.Typer, redis_url: str, prefix: str) -> None:
    common = ["--redis-url", redis_url, "--prefix", prefix]
    listed = runner.invoke(cli, ["schedules", "list", "--json", *common])
    assert listed.exit_code == 0 and json.loads(listed.output) == {"items": [], "next_cursor": None}
    sid = create(redis_url, prefix, cron="0 30 9 * * MON-FRI", timezone="Europe/Berlin", name="standup")

    listed = runner.invoke(cli, ["schedules", "list", *common], env={"COLUMNS": "200"})
    assert listed.exit_code == 0 and "standup" in listed.output
    shown = json.loads(runner.invoke(cli, ["schedules", "show", sid, "--json", *common]).output)
    assert shown["cron"] == "0 30 9 * * MON-FRI" and shown["is_active"] is True

    paused = runner.invoke(cli, ["schedules", "pause", sid, *common])
    assert paused.exit_code == 0 and "paused" in paused.output
    resumed = json.loads(runner.invoke(cli, ["schedules", "resume", sid, "--json", *common]).output)
    assert resumed["is_active"] is True

    upcoming = json.loads(runner.invoke(cli, ["schedules", "next", sid, "-n", "3", "--json", *common]).output)
    assert len(upcoming) == 3 and all(run["local"].endswith(("+01:00", "+02:00")) for run in upcoming)
    assert "09:30:00" in upcoming[0]["local"]
    history = json.loads(runner.invoke(cli, ["schedules", "history", sid, "--json", *common]).output)
    assert history == {"items": [], "next_cursor": None}

    deleted = runner.invoke(cli, ["schedules", "delete", sid, *common])
    assert deleted.exit_code == 0 and "deleted" in deleted.output
    assert json.loads(runner.invoke(cli, ["schedules", "list", "--json", *common]).output)["items"] == []
    assert len(json.loads(runner.invoke(cli, ["schedules", "list", "--all", "--json", *common]).output)["items"]) == 1


def test_exit_codes(cli: typer.Typer, redis_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    common = ["--redis-url", redis_url, "--prefix", prefix]
    missing = runner.invoke(cli, ["schedules", "show", "nope", *common])
    assert missing.exit_code == 1 and "no schedule 'nope'" in missing.output
    assert runner.invoke(cli, ["schedules", "pause", "nope", *common]).exit_code == 1
    bad_cursor = runner.invoke(cli, ["schedules", "list", "--cursor", "x", *common])
    assert bad_cursor.exit_code == 2 and "cursor" in bad_cursor.output
    assert runner.invoke(cli, ["schedules", "next", "nope", "-n", "0", *common]).exit_code == 2
    monkeypatch.delenv("TICKR_REDIS_URL", raising=False)
    monkeypatch.chdir("/")
    no_redis = runner.invoke(cli, ["schedules", "list"])
    assert no_redis.exit_code == 2 and "no Redis" in no_redis.output
    unreachable = runner.invoke(cli, ["schedules", "list", "--redis-url", "redis://127.0.0.1:1/0"])
    assert unreachable.exit_code == 1 and unreachable.output.startswith("error:")
