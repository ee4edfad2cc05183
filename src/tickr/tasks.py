"""Task definitions: a handler plus its defaults, how payloads map to its arguments, and building jobs for it."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from tickr.core.errors import Permanent, ValidationError
from tickr.core.factory import new_job
from tickr.core.job import Execution, Job, Priority
from tickr.core.retry import Backoff

if TYPE_CHECKING:
    from tickr.store.store import RedisStore

ENQUEUE_OPTIONS = frozenset(
    {"queue", "priority", "delay", "run_at", "idempotency_key", "max_retries", "timeout", "backoff", "execution"}
)


@dataclass(frozen=True, slots=True)
class TaskOptions:
    """Per-task defaults a job inherits unless the enqueue call overrides them."""

    queue: str = "default"
    priority: Priority = Priority.DEFAULT
    max_retries: int = 3
    backoff: Backoff = field(default_factory=Backoff)
    timeout: float | None = None
    execution: Execution = Execution.AT_LEAST_ONCE


@dataclass(slots=True)
class TaskDef:
    """A registered handler. ``raw_payload`` handlers get the payload dict as their only argument
    (the built-in job types); the others get it as keyword arguments."""

    name: str
    fn: Callable[..., Any]
    options: TaskOptions
    raw_payload: bool = False
    is_async: bool = field(init=False)
    signature: inspect.Signature = field(init=False)

    def __post_init__(self) -> None:
        self.is_async = inspect.iscoroutinefunction(self.fn)
        self.signature = inspect.signature(self.fn)

    def payload_from_call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Bind a Python call's arguments to parameter names: the JSON payload."""
        if self.raw_payload:
            if kwargs or len(args) != 1 or not isinstance(args[0], dict):
                raise TypeError(f"task {self.name!r} takes one payload dict")
            return dict(args[0])
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"task {self.name!r}: {exc}") from None
        payload: dict[str, Any] = {}
        for name, value in bound.arguments.items():
            if self.signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
                payload.update(value)
            elif self.signature.parameters[name].kind is inspect.Parameter.VAR_POSITIONAL:
                payload[name] = list(value)
            else:
                payload[name] = value
        return payload

    def call_arguments(self, payload: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The ``(args, kwargs)`` to call the handler with; ``Permanent`` when the payload does not fit."""
        if self.raw_payload:
            return (payload,), {}
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        rest = dict(payload)
        params = self.signature.parameters.values()
        has_varargs = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params)
        positional: set[inspect._ParameterKind] = {inspect.Parameter.POSITIONAL_ONLY}
        if has_varargs:  # parameters before *args must then be passed by position
            positional.add(inspect.Parameter.POSITIONAL_OR_KEYWORD)
        for name, param in self.signature.parameters.items():
            if param.kind is inspect.Parameter.VAR_POSITIONAL:
                args.extend(rest.pop(name, []))
            elif param.kind in positional and name in rest:
                args.append(rest.pop(name))
            elif param.kind is not inspect.Parameter.VAR_KEYWORD and name in rest:
                kwargs[name] = rest.pop(name)
        kwargs.update(rest)
        try:
            self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise Permanent(f"payload does not match task {self.name!r}: {exc}") from None
        return tuple(args), kwargs


class TaskCatalog(Protocol):
    """What schedulers and the schedule manager need of an app: its tasks, periodic definitions and store."""

    registry: dict[str, TaskDef]
    periodic: dict[str, Periodic]

    @property
    def store(self) -> RedisStore: ...

    def build_job(self, type: str, payload: dict[str, Any] | None = None, **options: Any) -> Job: ...


def build_job(
    registry: dict[str, TaskDef], default_max_retries: int, type: str, payload: dict[str, Any] | None, **options: Any
) -> Job:
    """A validated job for ``type``, with the registered task's defaults where ``options`` do not say."""
    unknown = set(options) - ENQUEUE_OPTIONS
    if unknown:
        raise TypeError(f"unknown enqueue option(s): {', '.join(sorted(unknown))}")
    defaults = registry[type].options if type in registry else TaskOptions(max_retries=default_max_retries)
    return new_job(
        type,
        payload,
        queue=options.get("queue") or defaults.queue,
        priority=options.get("priority") or defaults.priority,
        max_retries=defaults.max_retries if options.get("max_retries") is None else options["max_retries"],
        backoff=options.get("backoff") or defaults.backoff,
        timeout=options.get("timeout") if options.get("timeout") is not None else defaults.timeout,
        execution=options.get("execution") or defaults.execution,
        idempotency_key=options.get("idempotency_key"),
    )


def due_time_ms(delay: float | None, run_at: datetime | float | None, now_ms: int) -> int | None:
    """Absolute due time for ``delay`` seconds or ``run_at`` (aware datetime or epoch seconds)."""
    if delay is not None and run_at is not None:
        raise ValidationError("give delay or run_at, not both", {"delay": "cannot be combined with run_at"})
    if delay is not None:
        if delay < 0:
            raise ValidationError("delay must be >= 0", {"delay": "must be >= 0 seconds"})
        return now_ms + int(delay * 1000) if delay > 0 else None
    if run_at is None:
        return None
    if isinstance(run_at, datetime):
        if run_at.tzinfo is None:
            raise ValidationError("run_at must carry a timezone", {"run_at": "must be timezone-aware"})
        return int(run_at.timestamp() * 1000)
    return int(float(run_at) * 1000)


@dataclass(frozen=True, slots=True)
class Periodic:
    """An ``@app.task(cron=...)`` definition; a scheduler creates or updates its schedule when it starts."""

    task: str
    cron: str
    timezone: str = "UTC"
