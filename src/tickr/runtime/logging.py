"""Logging set-up for the CLI: readable console lines or one JSON object per line, both carrying the job.

stdlib ``logging`` with a JSON formatter (not structlog): every module already logs through stdlib loggers,
and so do uvicorn and the user's handlers; one formatter on the root handler puts all of them, uvicorn's
access log included, in one format with no second logging system to configure. The job a line is about
(id, type, queue, attempt) comes from ``tickr.context.running_job()``, so a handler's own log lines carry
it too, without passing anything around.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson

from tickr.context import running_job

_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}
JOB_FIELDS = ("job_id", "job_type", "queue", "attempt")


class JobContext(logging.Filter):
    """Adds ``job_id``, ``job_type``, ``queue`` and ``attempt`` of the job being run (when there is one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "job_id", None) is None:
            job = running_job()
            if job is not None:
                record.job_id, record.job_type = job.job_id, job.type
                record.queue, record.attempt = job.queue, job.attempt
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _RESERVED and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the job's fields, extras, exception text."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        data |= _extras(record)
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(data, default=str).decode()


class ConsoleFormatter(logging.Formatter):
    """``12:00:00 INFO    tickr.worker: message  job_id=... job_type=... queue=... attempt=1``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = _extras(record)
        if extras:
            text += "  " + " ".join(f"{k}={v}" for k, v in extras.items())
        return text


def configure_logging(level: str = "INFO", fmt: str = "console") -> None:
    """Send tickr's (and uvicorn's, and the handlers') logs to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
    handler.addFilter(JobContext())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):  # through the root handler, in our format
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers[:] = []
        uvicorn_logger.propagate = True
