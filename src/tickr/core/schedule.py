"""Recurring-job domain types: the ``Schedule`` record, its job template, misfire policy and fired runs."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from typing import Any

from tickr.core.job import Execution, Priority
from tickr.core.retry import Backoff


class Misfire(StrEnum):
    """What a scheduler does with occurrences that passed while no scheduler ran."""

    SKIP = "skip"  # run once now for the latest missed occurrence, then continue
    CATCH_UP = "catch_up"  # run the missed occurrences (up to max_catch_up), oldest first
    NONE = "none"  # run none of them


@dataclass(frozen=True, slots=True)
class JobTemplate:
    """The job a schedule enqueues at each occurrence (options already resolved)."""

    type: str
    payload: dict[str, Any] = field(default_factory=dict)
    queue: str = "default"
    priority: Priority = Priority.DEFAULT
    max_retries: int = 3
    timeout: float | None = None
    execution: Execution = Execution.AT_LEAST_ONCE
    backoff: Backoff = field(default_factory=Backoff)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "payload": self.payload,
            "queue": self.queue,
            "priority": self.priority.value,
            "max_retries": self.max_retries,
            "timeout": self.timeout,
            "execution": self.execution.value,
            "backoff": self.backoff.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobTemplate:
        return cls(
            type=data["type"],
            payload=dict(data.get("payload") or {}),
            queue=data.get("queue", "default"),
            priority=Priority(data.get("priority", "default")),
            max_retries=int(data.get("max_retries", 3)),
            timeout=float(data["timeout"]) if data.get("timeout") is not None else None,
            execution=Execution(data.get("execution", "at_least_once")),
            backoff=Backoff(**data["backoff"]) if data.get("backoff") else Backoff(),
        )


@dataclass(frozen=True, slots=True)
class Schedule:
    """A recurring job: when (cron, timezone), what (template), how (misfire, overlap), and its state.

    Times are epoch milliseconds; ``next_run_at`` is the next occurrence not yet enqueued.
    """

    id: str
    cron: str
    template: JobTemplate
    timezone: str = "UTC"
    misfire: Misfire = Misfire.SKIP
    max_catch_up: int = 10
    overlap: bool = True
    is_active: bool = True
    deleted: bool = False
    name: str | None = None
    description: str | None = None
    version: int = 0
    created_at: int | None = None
    updated_at: int | None = None
    deleted_at: int | None = None
    next_run_at: int | None = None
    last_run_at: int | None = None
    last_fired_at: int | None = None
    last_job_id: str | None = None
    last_job_queue: str | None = None
    fired: int = 0
    skipped_overlap: int = 0
    misfired: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (times in epoch milliseconds)."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["template"] = self.template.to_dict()
        out["misfire"] = self.misfire.value
        return out

    def with_changes(self, **changes: Any) -> Schedule:
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class FiredRun:
    """One entry of a schedule's run history: the occurrence and the job it enqueued."""

    fire_ms: int
    queue: str
    job_id: str


@dataclass(frozen=True, slots=True)
class FireRequest:
    """One compare-and-set advance: from ``expected_next`` to ``new_next``, recording ``runs`` and counters."""

    schedule_id: str
    expected_next: int
    new_next: int
    runs: list[FiredRun] = field(default_factory=list)
    skipped_overlap: int = 0
    misfired: int = 0
