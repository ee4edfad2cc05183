"""Request bodies of the HTTP API (pydantic): snake_case or camelCase names, unknown fields rejected.

Response bodies live in ``api/views.py``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    AliasChoices,
    AliasGenerator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ModelWrapValidatorHandler,
    PrivateAttr,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from tickr.core.cron import next_fire_ms, parse_schedule
from tickr.core.errors import ValidationError
from tickr.core.factory import MAX_IDEMPOTENCY_KEY
from tickr.core.job import QUEUE_NAME_RE, TYPE_NAME_RE, Execution, Priority
from tickr.core.schedule import Misfire
from tickr.scheduler.manager import MAX_CATCH_UP

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

    _given: frozenset[str] = PrivateAttr(default=frozenset())

    @model_validator(mode="wrap")
    @classmethod
    def _remember_names(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        model = handler(data)
        if isinstance(data, dict):
            model._given = frozenset(str(key) for key in data)
        return model

    def spelled(self, name: str) -> str:
        """The name under which the client gave field ``name`` (``cronExpression`` for ``cron``...); ``name``
        itself when the field was not given. Errors found after validation are reported under it."""
        alias = type(self).model_fields[name].validation_alias
        choices = alias.choices if isinstance(alias, AliasChoices) else [name]
        return next((c for c in choices if isinstance(c, str) and c in self._given), name)

    def given(self, names: Iterable[str]) -> list[str]:
        """Those of the fields ``names`` the client set to something other than null."""
        return [name for name in names if getattr(self, name) is not None]


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _check_cron(expression: str) -> str:
    """A schedule expression ``parse_schedule`` accepts and that fires at least once before year 9999."""
    try:
        spec = parse_schedule(expression, "UTC")
    except ValidationError as exc:
        raise ValueError(exc.errors.get("cron") or str(exc)) from None
    try:
        next_fire_ms(spec, time.time_ns() // 1_000_000)
    except (OverflowError, ValueError, OSError):
        raise ValueError(f"schedule '{expression}' never fires before the year 9999") from None
    return expression


def _check_timezone(timezone: str) -> str:
    try:
        parse_schedule("@daily", timezone)
    except ValidationError as exc:
        raise ValueError(exc.errors.get("timezone") or str(exc)) from None
    return timezone


CRON_ALIASES = AliasChoices("cron", "cronExpression", "cron_expression")
CronExpression = Annotated[str, Field(min_length=1, max_length=256), AfterValidator(_check_cron)]
CRON_DESCRIPTION = (
    "recurring: 6 fields (seconds first), 5 fields, a macro (`@hourly`...) or an interval (`every: 90s`); "
    "also accepted as `cronExpression`"
)
TimeZone = Annotated[
    str,
    Field(min_length=1, max_length=64, description="IANA timezone the cron fields are read in (default UTC)"),
    AfterValidator(_check_timezone),
]
MaxCatchUp = Annotated[
    int, Field(ge=1, le=MAX_CATCH_UP, description="most missed occurrences run under misfire `catch_up`")
]
# The fields of a POST /jobs body that only a recurring job (one with ``cron``) takes, and those it refuses.
RECURRING_ONLY = ("timezone", "misfire", "max_catch_up", "overlap", "is_active")
ONE_OFF_ONLY = ("delay", "run_at", "idempotency_key")


class BackoffIn(Body):
    """Exponential backoff: ``base * 2**(attempt-1)`` seconds capped at ``max``; ``jitter`` 0..1."""

    base: float = Field(1.0, ge=0, le=86_400)
    max: float = Field(300.0, ge=0, le=7 * 86_400)
    jitter: float = Field(1.0, ge=0, le=1)


class _JobFields(Body):
    """Validators shared by job bodies: enum values in any case, and one due time at most."""

    @field_validator("priority", "execution", "misfire", mode="before", check_fields=False)
    @classmethod
    def _normalise(cls, value: Any) -> Any:
        return _lower(value)

    @field_validator("run_at", check_fields=False)
    @classmethod
    def _one_due_time(cls, value: AwareDatetime | None, info: Any) -> AwareDatetime | None:
        if value is not None and info.data.get("delay") is not None:
            raise ValueError("give delay or run_at, not both")
        return value


class JobIn(_JobFields):
    """A job to enqueue. ``delay`` (seconds) or ``run_at`` (RFC 3339 with a timezone), not both.

    An HTTP job may be given as ``httpMethod`` + ``httpUrl`` (+ ``httpHeaders``, ``httpBody``)
    instead of ``type``/``payload``: it becomes type ``http`` with payload ``{method, url, headers, body}``.

    With ``cron`` (or ``cronExpression``) the body defines a recurring job instead: every other job field
    becomes the template of each run, and ``timezone``, ``misfire``, ``max_catch_up``, ``overlap`` and
    ``is_active`` apply; ``delay``, ``run_at`` and ``idempotency_key`` do not.
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
    cron: CronExpression | None = Field(None, validation_alias=CRON_ALIASES, description=CRON_DESCRIPTION)
    timezone: TimeZone | None = None
    misfire: Misfire | None = Field(None, description="recurring: skip (default), catch_up or none")
    max_catch_up: MaxCatchUp | None = None
    overlap: bool | None = Field(None, description="recurring: start a run while the previous one is unfinished")
    is_active: bool | None = Field(None, description="recurring: false creates it paused")


class BatchIn(Body):
    """Up to 1,000 jobs enqueued in one round trip; the whole batch is validated first."""

    jobs: list[JobIn] = Field(min_length=1, max_length=MAX_BATCH)


class JobPatch(_JobFields):
    """Changes to a job; null or absent fields stay as they are.

    A one-off job that has not started takes ``priority``, ``payload`` and ``delay``/``run_at`` (which move
    its due time; 0 or past = now). A recurring job takes ``priority`` and ``payload`` and every field below
    them but not ``delay``/``run_at``: a new ``cron`` or ``timezone`` moves its next run, ``is_active`` false
    pauses it and true resumes it (also undoing a DELETE). The ``http*`` fields change an ``http`` job's payload.
    """

    priority: Priority | None = None
    delay: float | None = Field(None, ge=0, le=MAX_DELAY_SECONDS)
    run_at: AwareDatetime | None = None
    payload: dict[str, Any] | None = None
    cron: CronExpression | None = Field(None, validation_alias=CRON_ALIASES, description=CRON_DESCRIPTION)
    timezone: TimeZone | None = None
    is_active: bool | None = None
    misfire: Misfire | None = None
    max_catch_up: MaxCatchUp | None = None
    overlap: bool | None = None
    queue: str | None = Field(None, pattern=QUEUE_PATTERN)
    max_retries: int | None = Field(None, ge=0, le=1000)
    timeout: float | None = Field(None, gt=0, le=86_400)
    execution: Execution | None = Field(
        None, validation_alias=AliasChoices("execution", "executionType", "execution_type")
    )
    backoff: BackoffIn | None = None
    name: str | None = Field(None, max_length=500)
    description: str | None = Field(None, max_length=500)
    http_method: str | None = Field(None, max_length=16)
    http_url: str | None = Field(None, max_length=8_192)
    http_headers: dict[str, str] | None = None
    http_body: JsonValue = None


class DeadReplayIn(Body):
    """Which dead jobs to replay: all when empty; else those of ``type`` and/or with these ``ids``."""

    type: str | None = Field(None, pattern=TYPE_PATTERN)
    ids: list[str] | None = Field(None, max_length=10_000)
