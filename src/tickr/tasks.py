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
                # bind() leaves a key naming another parameter here only if that one is positional-only or
                # *args; the flat payload cannot hold both, so running the job would mix them up
                clashes = sorted(set(value) & set(self.signature.parameters) - {name})
                if clashes:
                    keys = ", ".join(map(repr, clashes))
                    raise TypeError(
                        f"task {self.name!r}: keyword argument(s) {keys} for **{name} clash with a parameter"
                    )
                payload.update(value)
            elif self.signature.parameters[name].kind is inspect.Parameter.VAR_POSITIONAL:
                payload[name] = list(value)
            else:
                payload[name] = value
        return payload

    def call_arguments(self, payload: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The ``(args, kwargs)`` to call the handler with; ``Permanent`` when the payload does not fit.

        - The ``*args`` value, if the payload has one, must be a list; it is spread after the positional values.
        - Positional-only parameters are passed by position. Positional-or-keyword ones are too when that list
          is non-empty (they must then all come before it), and by keyword otherwise.
        - A positional parameter missing from the payload while a later value goes by position gets its default,
          or the payload is refused if it has none; missing trailing ones are left to Python's defaults.
        - Every other key is passed by keyword (to its parameter or ``**kwargs``).
        """
        if self.raw_payload:
            return (payload,), {}
        mismatch = f"payload does not match task {self.name!r}"
        kwargs = dict(payload)
        params = list(self.signature.parameters.values())
        star = next((p.name for p in params if p.kind is inspect.Parameter.VAR_POSITIONAL), None)
        varargs = kwargs.pop(star, []) if star is not None else []
        if not isinstance(varargs, list):
            raise Permanent(f"{mismatch}: *{star} must be a list, not {type(varargs).__name__}")
        positional_kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        if varargs:  # all positional parameters come before *args, so all go by position
            positional = [p for p in params if p.kind in positional_kinds]
            count = len(positional)
        else:  # positional-only ones, up to the last that the payload names
            positional = [p for p in params if p.kind is inspect.Parameter.POSITIONAL_ONLY]
            named = [i for i, p in enumerate(positional) if p.name in kwargs]
            count = named[-1] + 1 if named else 0
        args: list[Any] = []
        for param in positional[:count]:
            if param.name in kwargs:
                args.append(kwargs.pop(param.name))
            elif param.default is not inspect.Parameter.empty:
                args.append(param.default)
            else:
                raise Permanent(f"{mismatch}: missing a required argument: {param.name!r}")
        args.extend(varargs)
        try:
            self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise Permanent(f"{mismatch}: {exc}") from None
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
