"""``tickr history JOB_ID`` and ``tickr jobs list`` reaching into the SQL history (SQLite in the data directory)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, insert
from typer.testing import CliRunner

from tests.history.rows import create_sqlite_schema, job_row, run_row
from tickr.cli.main import cli
from tickr.history.schema import job_runs, jobs

runner = CliRunner()
Invoke = Callable[..., str]


@pytest.fixture
def tickr(redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    monkeypatch.setenv("TICKR_REDIS_URL", redis_url)
    monkeypatch.setenv("TICKR_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("TICKR_DATABASE_URL", raising=False)

    def invoke(*args: str, code: int = 0, columns: int = 200) -> str:
        result = runner.invoke(cli, list(args), env={"COLUMNS": str(columns)})
        assert result.exit_code == code, (result.exit_code, result.output, result.stderr)
        return result.stdout if code == 0 else result.stderr

    return invoke


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., None]:
    engine = create_engine(f"sqlite:///{create_sqlite_schema(tmp_path)}")

    def insert_rows(job_rows: list[dict[str, Any]], run_rows: list[dict[str, Any]] | None = None) -> None:
        with engine.begin() as conn:
            conn.execute(insert(jobs), job_rows)
            if run_rows:
                conn.execute(insert(job_runs), run_rows)

    return insert_rows


def test_jobs_list_reaches_into_sql(tickr: Invoke, write: Callable[..., None], queue: str) -> None:
    now = int(time.time() * 1000)
    write(
        [
            job_row(id="old-dead", queue=queue, status="dead", created_at=now - 2 * 3_600_000, error_message="x"),
            job_row(
                id="new-dead",
                queue=queue,
                status="dead",
                worker="w1",
                created_at=now - 60_000,
                error_type="SMTPError",
                error_message="mailbox full",
            ),
            job_row(id="new-done", queue=queue, status="succeeded", worker="w1", created_at=now - 30_000),
        ]
    )
    listed = json.loads(tickr("jobs", "list", "--since", "1h", "--status", "dead", "-q", queue, "--json"))
    assert [job["id"] for job in listed["items"]] == ["new-dead"] and listed["next_cursor"] is None
    assert listed["items"][0]["last_error"]["message"] == "mailbox full"
    page = json.loads(tickr("jobs", "list", "--worker", "w1", "--limit", "1", "--json"))
    assert [job["id"] for job in page["items"]] == ["new-done"] and page["next_cursor"]
    rest = json.loads(
        tickr("jobs", "list", "--worker", "w1", "--limit", "1", "--cursor", page["next_cursor"], "--json")
    )
    assert [job["id"] for job in rest["items"]] == ["new-dead"]
    table = tickr("jobs", "list", "--source", "history", "-q", queue, "--error", "SMTP", columns=80)
    assert "new-dead" in table and "mailbox full" in table and "old-dead" not in table
    assert all(len(line) <= 80 for line in table.splitlines())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--since", "1x"), "--since '1x'"),
        (("--until", "2026-01-02"), "--until"),
        (("--source", "live", "--worker", "w1"), "only with --source history"),
        (("--source", "archive"), "--source"),
        (("--source", "history", "--cursor", "nope"), "cursor"),
        (("--source", "history", "--status", "sleeping"), "status"),
    ],
)
def test_bad_input_exits_2(tickr: Invoke, write: Callable[..., None], args: tuple[str, ...], message: str) -> None:
    assert message in tickr("jobs", "list", *args, code=2)


def test_history_of_a_job(tickr: Invoke, write: Callable[..., None], queue: str) -> None:
    job_id = str(uuid.uuid4())
    write(
        [job_row(id=job_id, queue=queue, status="succeeded", attempt=2)],
        [
            run_row(job_id, 1, queue=queue, outcome="failed", error_type="IOError", error_message="disk full"),
            run_row(job_id, 2, queue=queue, outcome="succeeded", worker="w-two"),
        ],
    )
    body = json.loads(tickr("history", job_id, "--json"))
    assert [(r["attempt"], r["outcome"]) for r in body["items"]] == [(2, "succeeded"), (1, "failed")]
    assert body["items"][1]["error"] == {"type": "IOError", "message": "disk full"} and body["next_cursor"] is None
    first = json.loads(tickr("history", job_id, "--limit", "1", "--json"))
    assert first["next_cursor"] and "--cursor" in tickr("history", job_id, "--limit", "1")
    table = tickr("history", job_id, columns=80)
    assert "w-two" in table and "IOError: disk full" in table
    assert all(len(line) <= 80 for line in table.splitlines())
    # a job SQL has no attempt of yet: its single run from Redis
    live = json.loads(tickr("enqueue", "noop", "-q", queue, "--json"))
    [run] = json.loads(tickr("history", live["id"], "--json"))["items"]
    assert (run["job_id"], run["outcome"]) == (live["id"], "queued")
    assert "not found" in tickr("history", str(uuid.uuid4()), code=1)
    assert "cursor" in tickr("history", job_id, "--cursor", "bad", code=2)


def test_database_down_exits_1(tickr: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKR_DATABASE_URL", "postgresql://postgres@127.0.0.1:1/test")
    assert "history database is unavailable" in tickr("jobs", "list", "--since", "1h", code=1)
    monkeypatch.setenv("TICKR_HISTORY", "false")
    assert "TICKR_HISTORY=false" in tickr("jobs", "list", "--since", "1h", code=2)
