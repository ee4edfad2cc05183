"""Logs: JSON lines (or console lines) that carry the job they are about; no per-job INFO line unless asked."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from tickr.config import Settings
from tickr.context import JobContext, reset_current_job, set_current_job
from tickr.runtime.logging import configure_logging


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    buffer = io.StringIO()
    yield buffer
    root.handlers[:], root.level = saved, level


def _route(buffer: io.StringIO) -> None:
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buffer)


def test_json_lines_carry_the_running_job(captured: io.StringIO) -> None:
    configure_logging("INFO", "json")
    _route(captured)
    token = set_current_job(JobContext("j1", "send", "mail", 2, 3, "w1", Settings.model_construct()))
    try:
        logging.getLogger("user.handler").info("sending %s", "x")
    finally:
        reset_current_job(token)
    logging.getLogger("tickr").info("no job here")
    first, second = (json.loads(line) for line in captured.getvalue().splitlines())
    assert first | {"ts": 0} == {
        "ts": 0,
        "level": "info",
        "logger": "user.handler",
        "msg": "sending x",
        "job_id": "j1",
        "job_type": "send",
        "queue": "mail",
        "attempt": 2,
    }
    assert "job_id" not in second


def test_console_lines_carry_the_job_too(captured: io.StringIO) -> None:
    configure_logging("INFO", "console")
    _route(captured)
    token = set_current_job(JobContext("j1", "send", "mail", 1, 3, "w1", Settings.model_construct()))
    try:
        logging.getLogger("tickr.worker").warning("slow")
    finally:
        reset_current_job(token)
    assert "slow  job_id=j1 job_type=send queue=mail attempt=1" in captured.getvalue()


def test_uvicorn_logs_go_through_the_same_handler(captured: io.StringIO) -> None:
    configure_logging("INFO", "json")
    _route(captured)
    access = logging.getLogger("uvicorn.access")
    level = access.level
    access.setLevel(logging.INFO)  # as the API server sets it with TICKR_LOG_JOBS (an earlier server may not have)
    try:
        access.info('%s "%s %s"', "127.0.0.1", "GET", "/health")
    finally:
        access.setLevel(level)
    assert json.loads(captured.getvalue())["logger"] == "uvicorn.access"


async def test_no_per_job_info_line_unless_log_jobs(app, queue: str, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    from tickr.worker.worker import Worker, WorkerConfig

    caplog.set_level(logging.INFO, logger="tickr.worker")
    for log_jobs in (False, True):
        app.settings = app.settings.model_copy(update={"log_jobs": log_jobs})
        await app.enqueue("noop", {}, queue=queue)
        caplog.clear()
        await Worker(app, WorkerConfig(queues=[queue], burst=True, reaper=False)).run()
        per_job = [r for r in caplog.records if "succeeded in" in r.getMessage() or "started" in r.getMessage()]
        assert bool(per_job) is log_jobs
