"""The job record and the vocabulary shared by Python, Lua, JSON, SQL and metrics."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from tickr.core.errors import ValidationError
from tickr.core.retry import Backoff

QUEUE_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
TYPE_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-:/]{1,128}$")


class JobState(StrEnum):
    """Where a job is in its life. The values are the literal strings stored in Redis."""

    SCHEDULED = "scheduled"
    QUEUED = "queued"
    ACTIVE = "active"
    SUCCEEDED = "succeeded"
    RETRYING = "retrying"
    DEAD = "dead"
    CANCELLED = "cancelled"
    LOST = "lost"

    @property
    def is_final(self) -> bool:
        return self in {JobState.SUCCEEDED, JobState.DEAD, JobState.CANCELLED, JobState.LOST}


class Priority(StrEnum):
    """Priority classes, highest first."""

    CRITICAL = "critical"
    HIGH = "high"
    DEFAULT = "default"
    LOW = "low"


PRIORITIES: tuple[Priority, ...] = (Priority.CRITICAL, Priority.HIGH, Priority.DEFAULT, Priority.LOW)


class Execution(StrEnum):
    """Delivery guarantee of a job."""

    AT_LEAST_ONCE = "at_least_once"
    AT_MOST_ONCE = "at_most_once"


def validate_queue_name(name: str) -> str:
    """Return ``name`` if it can be a queue name; Redis hash tags forbid ``{``, ``}`` and ``:``."""
    if not isinstance(name, str) or not QUEUE_NAME_RE.fullmatch(name):
        raise ValidationError(
            f"invalid queue name {name!r}",
            {"queue": "must be 1-64 characters of letters, digits, '_', '-' or '.'"},
        )
    return name


def validate_type_name(name: str) -> str:
    """Return ``name`` if it can be a job type (handler name)."""
    if not isinstance(name, str) or not TYPE_NAME_RE.fullmatch(name):
        raise ValidationError(
            f"invalid job type {name!r}",
            {"type": "must be 1-128 characters of letters, digits, '_', '-', '.', ':' or '/'"},
        )
    return name


@dataclass(slots=True)
class JobError:
    """The error of a failed attempt."""

    type: str
    message: str
    traceback: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"type": self.type, "message": self.message, "traceback": self.traceback}


@dataclass(slots=True)
class Job:
    """A unit of work. Times are milliseconds since the epoch (``None`` when not reached)."""

    id: str
    type: str
    payload: dict[str, Any] = field(default_factory=dict)
    queue: str = "default"
    priority: Priority = Priority.DEFAULT
    status: JobState = JobState.QUEUED
    attempt: int = 0
    max_retries: int = 3
    backoff: Backoff = field(default_factory=Backoff)
    timeout: float | None = None
    execution: Execution = Execution.AT_LEAST_ONCE
    idempotency_key: str | None = None
    name: str | None = None
    description: str | None = None
    schedule_id: str | None = None
    created_at: int | None = None
    scheduled_for: int | None = None
    started_at: int | None = None
    finished_at: int | None = None
    last_error: JobError | None = None
    result: Any = None
    worker: str | None = None
    traceparent: str | None = None  # W3C trace context of the span that enqueued it (tracing on)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view with times in milliseconds."""
        return {
            "id": self.id,
            "type": self.type,
            "payload": self.payload,
            "queue": self.queue,
            "priority": self.priority.value,
            "status": self.status.value,
            "attempt": self.attempt,
            "max_retries": self.max_retries,
            "backoff": self.backoff.to_dict(),
            "timeout": self.timeout,
            "execution": self.execution.value,
            "idempotency_key": self.idempotency_key,
            "name": self.name,
            "description": self.description,
            "schedule_id": self.schedule_id,
            "created_at": self.created_at,
            "scheduled_for": self.scheduled_for,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "last_error": self.last_error.to_dict() if self.last_error else None,
            "result": self.result,
            "worker": self.worker,
        }
