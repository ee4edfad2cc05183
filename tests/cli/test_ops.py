"""The operations CLI against real Redis: output for people and scripts, exit codes 0/1/2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tickr.cli.main import cli

runner = CliRunner()


@pytest.fixture
def tickr(redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TICKR_REDIS_URL", redis_url)
    monkeypatch.setenv("TICKR_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "200")

    def invoke(*args: str, code: int = 0) -> str:
        result = runner.invoke(cli, list(args))
        assert result.exit_code == code, (result.exit_code, result.output, result.stderr)
        return result.stdout

    return invoke


def test_enqueue_show_list_cancel_retry(tickr, queue: str) -> None:  # type: ignore[no-untyped-def]
    created = json.loads(tickr("enqueue", "noop", "--payload", '{"a": 1}', "-q", queue, "--delay", "60", "--json"))
    job_id = created["id"]
    assert created["status"] == "scheduled" and created["payload"] == {"a": 1}
    shown = json.loads(tickr("jobs", "show", job_id, "--json"))
    assert shown["id"] == job_id and shown["queue"] == queue
    listed = json.loads(tickr("jobs", "list", "-q", queue, "--json"))
    assert [j["id"] for j in listed["jobs"]] == [job_id]
    assert "cancelled" in tickr("jobs", "cancel", job_id)
    assert "queued" in tickr("jobs", "retry", job_id)
    tickr("jobs", "cancel", job_id)
    tickr("jobs", "cancel", job_id, code=1)  # already cancelled: a failed operation
    assert job_id in tickr("jobs", "list", "-q", queue)


def test_errors_have_exit_codes(tickr, queue: str, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    tickr("jobs", "show", "01234567-0000-7000-8000-000000000000", code=1)
    tickr("enqueue", "noop", "--payload", "{not json", "-q", queue, code=2)
    tickr("enqueue", "noop", "--priority", "urgent", "-q", queue, code=2)
    tickr("enqueue", "noop", "-q", "bad:queue", code=2)
    tickr("nonsense-command", code=2)
    monkeypatch.delenv("TICKR_REDIS_URL")
    tickr("queues", code=2)


def test_queues_dlq_workers(tickr, queue: str) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    from tickr import App, Settings
    from tickr.worker.worker import Worker, WorkerConfig

    for _ in range(3):
        tickr("enqueue", "fail", "-q", queue, "--max-retries", "0")

    async def drain() -> None:
        app = App(settings=Settings())
        await Worker(app, WorkerConfig(queues=[queue], burst=True)).run()
        await app.close()

    asyncio.run(drain())
    stats = {q["name"]: q for q in json.loads(tickr("queues", "--json"))}
    assert stats[queue]["dead"] == 3
    dead = json.loads(tickr("dlq", "list", "-q", queue, "--json"))
    assert len(dead) == 3 and all(j["last_error"]["type"] == "RuntimeError" for j in dead)
    assert "replayed 1 jobs" in tickr("dlq", "replay", "-q", queue, dead[0]["id"])
    assert "purged 2 jobs" in tickr("dlq", "purge", "-q", queue, "--yes")
    assert json.loads(tickr("dlq", "list", "-q", queue, "--json")) == []
    assert isinstance(json.loads(tickr("workers", "--json")), list)
    assert queue in tickr("queues")


def test_commands_find_a_running_tickr_up(
    tickr,
    queue: str,
    redis_url: str,
    tmp_path: Path,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TICKR_REDIS_URL")
    tickr("queues", code=2)  # nothing to find yet
    (tmp_path / "redis-url").write_text(redis_url + "\n")  # what `tickr up` writes while it runs
    job_id = json.loads(tickr("enqueue", "noop", "-q", queue, "--json"))["id"]
    tickr("worker", "--queues", queue, "--burst")
    assert json.loads(tickr("jobs", "show", job_id, "--json"))["status"] == "succeeded"
