"""The running job's context, reachable from inside a handler through ``current_job()``."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from tickr.config import Settings


@dataclass(frozen=True, slots=True)
class JobContext:
    """What a handler may want to know about the job it is running."""

    job_id: str
    type: str
    queue: str
    attempt: int
    max_retries: int
    worker_id: str
    settings: Settings


_current: ContextVar[JobContext | None] = ContextVar("tickr_current_job", default=None)


def current_job() -> JobContext:
    """The context of the job being run by this task or thread.

    Raises ``RuntimeError`` outside a job.
    """
    ctx = _current.get()
    if ctx is None:
        raise RuntimeError("current_job() called outside a running tickr job")
    return ctx


def set_current_job(ctx: JobContext | None) -> object:
    """Bind ``ctx`` for the current task; returns a token for ``reset_current_job``."""
    return _current.set(ctx)


def reset_current_job(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]


def running_job() -> JobContext | None:
    """The context of the job being run by this task or thread, or None outside a job (never raises)."""
    return _current.get()
