"""The operations CLI against real Redis: output for people (tables within 80 columns) and scripts (one JSON
shape per kind), exit codes 0/1/2, payloads checked before they are enqueued."""

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

    def invoke(*args: str, code: int = 0, columns: int = 200) -> str:
        result = runner.invoke(cli, list(args), env={"COLUMNS": str(columns)})
        assert result.exit_code == code, (result.exit_code, result.output, result.stderr)
        return result.stdout

    return invoke


def narrow(tickr, *args: str) -> str:  # type: ignore[no-untyped-def]
    """The output at 80 columns, checked to stay within them."""
    out: str = tickr(*args, columns=80)
    too_long = [line for line in out.splitlines() if len(line) > 80]
    assert not too_long, "\n".join(too_long)
    return out


def test_enqueue_show_list_cancel_retry(tickr, queue: str) -> None:  # type: ignore[no-untyped-def]
    created = json.loads(tickr("enqueue", "noop", "--payload", '{"a": 1}', "-q", queue, "--delay", "60", "--json"))
    job_id = created["id"]
    assert created["status"] == "scheduled" and created["payload"] == {"a": 1}
    shown = json.loads(tickr("jobs", "show", job_id, "--json"))
    assert shown["id"] == job_id and shown["queue"] == queue
    listed = json.loads(tickr("jobs", "list", "-q", queue, "--json"))
    assert listed == {"items": [shown], "next_cursor": None}
    assert "cancelled" in tickr("jobs", "cancel", job_id)
    assert "queued" in tickr("jobs", "retry", job_id)
    cancelled = json.loads(tickr("jobs", "cancel", job_id, "--json"))  # a job, in the one job shape
    assert set(cancelled) == set(shown) and (cancelled["id"], cancelled["status"]) == (job_id, "cancelled")
    replayed = json.loads(tickr("jobs", "replay", job_id, "--json"))
    assert set(replayed) == set(shown) and replayed["status"] == "queued"
    tickr("jobs", "cancel", job_id)
    tickr("jobs", "cancel", job_id, code=1)  # already cancelled: a failed operation
    assert job_id in tickr("jobs", "list", "-q", queue)
    assert job_id in narrow(tickr, "jobs", "list", "-q", queue)  # the whole id, to copy
    assert job_id in narrow(tickr, "jobs", "show", job_id)


def test_enqueue_checks_the_payload(tickr, queue: str) -> None:  # type: ignore[no-untyped-def]
    result = runner.invoke(cli, ["enqueue", "sleep", "--payload", '{"ms": -5}', "-q", queue])
    assert result.exit_code == 2
    assert "payload.ms" in result.stderr and result.stdout == ""
    result = runner.invoke(cli, ["enqueue", "report", "--payload", '{"name": "r", "rows": [{"a": 1}]}', "-q", queue])
    assert result.exit_code == 0, result.output
    assert json.loads(tickr("jobs", "list", "-q", queue, "--json"))["items"][0]["type"] == "report"


def test_enqueue_of_an_unknown_type_warns_and_enqueues(tickr, queue: str) -> None:  # type: ignore[no-untyped-def]
    result = runner.invoke(cli, ["enqueue", "billing.charge", "-q", queue, "--json"])
    assert result.exit_code == 0, result.output
    assert result.stderr == "warning: no worker has registered type 'billing.charge' (yet)\n"
    assert json.loads(result.stdout)["status"] == "queued"
    known = runner.invoke(cli, ["enqueue", "noop", "-q", queue])
    assert known.exit_code == 0 and known.stderr == ""


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
    listing = json.loads(tickr("queues", "--json"))
    assert set(listing) == {"items", "next_cursor"}
    stats = {q["name"]: q for q in listing["items"]}
    assert stats[queue]["dead"] == 3
    page = json.loads(tickr("dlq", "list", "-q", queue, "--json"))
    assert set(page) == {"items", "next_cursor"} and page["next_cursor"] is None
    dead = page["items"]
    assert len(dead) == 3 and all(j["last_error"]["type"] == "RuntimeError" for j in dead)
    assert dead[0] == json.loads(tickr("jobs", "show", dead[0]["id"], "--json"))  # the one job shape
    first = json.loads(tickr("dlq", "list", "-q", queue, "--limit", "2", "--json"))
    rest = json.loads(tickr("dlq", "list", "-q", queue, "--limit", "2", "--cursor", first["next_cursor"], "--json"))
    assert [j["id"] for j in first["items"] + rest["items"]] == [j["id"] for j in dead]

    table = narrow(tickr, "dlq", "list", "-q", queue)
    assert all(j["id"] in table for j in dead) and "RuntimeError" not in table  # the message, not the type
    assert "fail job always" in table
    assert dead[0]["id"] in narrow(tickr, "jobs", "show", dead[0]["id"])  # with its traceback, folded
    assert queue in narrow(tickr, "queues")
    narrow(tickr, "workers")

    assert "replayed 1 jobs" in tickr("dlq", "replay", "-q", queue, dead[0]["id"])
    assert "purged 2 jobs" in tickr("dlq", "purge", "-q", queue, "--yes")
    assert json.loads(tickr("dlq", "list", "-q", queue, "--json")) == {"items": [], "next_cursor": None}
    workers = json.loads(tickr("workers", "--json"))
    assert set(workers) == {"items", "next_cursor"} and isinstance(workers["items"], list)
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
