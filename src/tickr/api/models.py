"""Request bodies of the HTTP API (pydantic): snake_case or camelCase names, unknown fields rejected.

Response bodies live in ``api/views.py``.
"""

from __future__ import annotations

from typing import Any

from pydantic import (
    AliasChoices,
    AliasGenerator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    field_validator,
)
from pydantic.alias_generators import to_camel

from tickr.core.factory import MAX_IDEMPOTENCY_KEY
from tickr.core.job import QUEUE_NAME_RE, TYPE_NAME_RE, Execution, Priority

MAX_DELAY_SECONDS = 10 * 365 * 86_400
MAX_BATCH = 1_000
# pydantic matches these with Rust regex, whose ``$`` is the end of the text (no trailing newline).
TYPE_PATTERN = TYPE_NAME_RE.pattern
QUEUE_PATTERN = QUEUE_NAME_RE.pattern


def _snake_or_camel(name: str) -> AliasChoices:
    return AliasChoices(name, to_camel(name))


class Body(BaseModel):
    """Base of every request body: snake_case or camelCase names, unknown fields rejected, no NaN/Infinity.

    The camelCase spelling (``to_camel``) is a second validation alias, so the OpenAPI document shows
    the snake_case names, which are canonical; errors name the field as the client spelled it.
    """

    model_config = ConfigDict(
        alias_generator=AliasGenerator(validation_alias=_snake_or_camel),
        populate_by_name=True,
        extra="forbid",
        allow_inf_nan=False,
    )


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


class BackoffIn(Body):
    """Exponential backoff: ``base * 2**(attempt-1)`` seconds capped at ``max``; ``jitter`` 0..1."""

    base: float = Field(1.0, ge=0, le=86_400)
    max: float = Field(300.0, ge=0, le=7 * 86_400)
    jitter: float = Field(1.0, ge=0, le=1)


class JobIn(Body):
    """A job to enqueue. ``delay`` (seconds) or ``run_at`` (RFC 3339 with a timezone), not both.

    An HTTP job may be given as ``httpMethod`` + ``httpUrl`` (+ ``httpHeaders``, ``httpBody``)
    instead of ``type``/``payload``: it becomes type ``http`` with payload ``{method, url, headers, body}``.
    """

    type: str | None = Field(None, pattern=TYPE_PATTERN, description="handler name (task or built-in job type)")
    payload: dict[str, Any] = Field(default_factory=dict, description="JSON object handed to the handler")
    queue: str | None = Field(None, pattern=QUEUE_PATTERN, description="default: the task's queue, else `default`")
    priority: Priority | None = None
    delay: float | None = Field(None, ge=0, le=MAX_DELAY_SECONDS, description="seconds from now")
    run_at: AwareDatetime | None = Field(None, description="when to run (RFC 3339, with timezone)")
    max_retries: int | None = Field(None, ge=0, le=1000)
    timeout: float | None = Field(None, gt=0, le=86_400, description="seconds a run may take")
    execution: Execution | None = Field(
        None,
        validation_alias=AliasChoices("execution", "executionType", "execution_type"),
        description="at_least_once (default) or at_most_once; AT_LEAST_ONCE/AT_MOST_ONCE accepted",
    )
    idempotency_key: str | None = Field(None, min_length=1, max_length=MAX_IDEMPOTENCY_KEY)
    name: str | None = Field(None, max_length=200)
    description: str | None = Field(None, max_length=2_000)
    backoff: BackoffIn | None = None
    http_method: str | None = Field(None, max_length=16)
    http_url: str | None = Field(None, max_length=8_192)
    http_headers: dict[str, str] | None = None
    http_body: JsonValue = None

    @field_validator("priority", "execution", mode="before")
    @classmethod
    def _normalise(cls, value: Any) -> Any:
        return _lower(value)

    @field_validator("run_at")
    @classmethod
    def _one_due_time(cls, value: AwareDatetime | None, info: Any) -> AwareDatetime | None:
        if value is not None and info.data.get("delay") is not None:
            raise ValueError("give delay or run_at, not both")
        return value


class BatchIn(Body):
    """Up to 1,000 jobs enqueued in one round trip; the whole batch is validated first."""

    jobs: list[JobIn] = Field(min_length=1, max_length=MAX_BATCH)


class JobPatch(Body):
    """Changes to a job that has not started. ``delay``/``run_at`` move its due time (0 or past = now)."""

    priority: Priority | None = None
    delay: float | None = Field(None, ge=0, le=MAX_DELAY_SECONDS)
    run_at: AwareDatetime | None = None
    payload: dict[str, Any] | None = None

    @field_validator("priority", mode="before")
    @classmethod
    def _normalise(cls, value: Any) -> Any:
        return _lower(value)

    @field_validator("run_at")
    @classmethod
    def _one_due_time(cls, value: AwareDatetime | None, info: Any) -> AwareDatetime | None:
        if value is not None and info.data.get("delay") is not None:
            raise ValueError("give delay or run_at, not both")
        return value


class DeadRetryIn(Body):
    """Which dead jobs to replay: all when empty; else those of ``type`` and/or with these ``ids``."""

    type: str | None = Field(None, pattern=TYPE_PATTERN)
    ids: list[str] | None = Field(None, max_length=10_000)
