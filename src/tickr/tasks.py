"""Task definitions: a handler plus its defaults, how payloads map to its arguments, and building jobs for it."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from tickr import payloads
from tickr.core.errors import Permanent, ValidationError
from tickr.core.factory import check_payload, new_job
from tickr.core.job import Execution, Job, Priority
from tickr.core.retry import Backoff

if TYPE_CHECKING:
    import pydantic

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

    def to_dict(self) -> dict[str, Any]:
        """The JSON form a worker registers for its task types (``GET /api/v1/tasks`` shows it)."""
        return {
            "queue": self.queue,
            "priority": self.priority.value,
            "max_retries": self.max_retries,
            "backoff": self.backoff.to_dict(),
            "timeout": self.timeout,
            "execution": self.execution.value,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskOptions:
        """The options a worker registered (``to_dict``); unknown or missing fields take the defaults."""
        base = cls()
        return cls(
            queue=str(data.get("queue") or base.queue),
            priority=Priority(data.get("priority") or base.priority),
            max_retries=int(data.get("max_retries", base.max_retries)),
            backoff=Backoff.from_value(data.get("backoff")) if data.get("backoff") else base.backoff,
            timeout=float(data["timeout"]) if data.get("timeout") is not None else None,
            execution=Execution(data.get("execution") or base.execution),
        )


@dataclass(slots=True)
class TaskDef:
    """A registered handler. ``raw_payload`` handlers get the payload dict as their only argument
    (the built-in job types); the others get it as keyword arguments.

    ``payload_model`` (a pydantic model) is what a payload must fit at enqueue; without one, the handler's
    signature is the model (a raw-payload handler without one takes any JSON object). The handler is still
    called with the payload's JSON values, not with the model.
    """

    name: str
    fn: Callable[..., Any]
    options: TaskOptions
    raw_payload: bool = False
    payload_model: type[pydantic.BaseModel] | None = None
    is_async: bool = field(init=False)
    signature: inspect.Signature = field(init=False)
    _payload_spec: payloads.PayloadSpec | None = field(init=False, default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.is_async = inspect.iscoroutinefunction(self.fn)
        self.signature = inspect.signature(self.fn)
        if self.payload_model is not None:
            self._payload_spec = payloads.from_model(self.payload_model)  # a wrong payload= fails at once

    def _payloads(self) -> payloads.PayloadSpec:
        if self._payload_spec is None:  # built on first use: registering a task stays cheap
            if self.raw_payload:
                self._payload_spec = payloads.ANY_OBJECT
            else:
                self._payload_spec = payloads.from_signature(self.fn, self.signature, self.name)
        return self._payload_spec

    def validate_payload(self, payload: dict[str, Any]) -> None:
        """``ValidationError`` naming each bad field as ``payload.<field>``, unless ``payload`` fits the model."""
        self._payloads().validate(payload, self.name)

    def payload_schema(self) -> dict[str, Any]:
        """The JSON Schema of the payload model (what ``validate_payload`` checks, as far as JSON Schema can say)."""
        return self._payloads().json_schema()

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
    registry: Mapping[str, TaskDef],
    default_max_retries: int,
    type: str,
    payload: dict[str, Any] | None,
    remote: Mapping[str, TaskOptions] | None = None,
    **options: Any,
) -> Job:
    """A validated job for ``type``, with the task's defaults where ``options`` do not say: those of the
    local registry, else those a worker registered in Redis (``remote``), else the settings' defaults."""
    unknown = set(options) - ENQUEUE_OPTIONS
    if unknown:
        raise TypeError(f"unknown enqueue option(s): {', '.join(sorted(unknown))}")
    task = registry.get(type)
    registered = remote.get(type) if remote is not None and task is None else None
    defaults = task.options if task is not None else registered or TaskOptions(max_retries=default_max_retries)
    try:
        job = new_job(
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
    except ValidationError as exc:
        errors = {**exc.errors, **_payload_errors(task, payload)}
        raise ValidationError("invalid job: " + "; ".join(f"{k}: {v}" for k, v in errors.items()), errors) from None
    if task is not None:
        task.validate_payload(job.payload)
    return job


def _payload_errors(task: TaskDef | None, payload: dict[str, Any] | None) -> dict[str, str]:
    """The payload's field errors, for an answer that names them along with the options' errors."""
    if task is None:
        return {}
    try:
        task.validate_payload(check_payload(payload if payload is not None else {}))
    except TypeError:  # not JSON: new_job says so once the options are right
        return {}
    except ValidationError as exc:
        return exc.errors
    return {}


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def due_time_ms(delay: float | None, run_at: datetime | float | None, now_ms: int) -> int | None:
    """Absolute due time for ``delay`` seconds or ``run_at`` (aware datetime or epoch seconds).

    Rounded up to the next millisecond, so a job never starts before the time asked for. Seconds given as a
    float are first rounded to the microsecond (``1.1`` means 1_100_000 µs, not 1_100_000.0000000002).
    """
    if delay is not None and run_at is not None:
        raise ValidationError("give delay or run_at, not both", {"delay": "cannot be combined with run_at"})
    if delay is not None:
        if not (math.isfinite(delay) and delay >= 0):
            raise ValidationError("delay must be >= 0", {"delay": "must be a number of seconds >= 0"})
        return now_ms + _ceil_ms(_micros(delay)) if delay > 0 else None
    if run_at is None:
        return None
    if isinstance(run_at, datetime):
        if run_at.tzinfo is None:
            raise ValidationError("run_at must carry a timezone", {"run_at": "must be timezone-aware"})
        since = run_at - _EPOCH  # exact integers: days, seconds, microseconds
        return _ceil_ms((since.days * 86_400 + since.seconds) * 1_000_000 + since.microseconds)
    seconds = run_at if isinstance(run_at, int) else float(run_at)
    if not math.isfinite(seconds):
        raise ValidationError("run_at must be a finite time", {"run_at": "must be a finite number of seconds"})
    return _ceil_ms(_micros(seconds))


def _micros(seconds: float) -> int:
    return seconds * 1_000_000 if isinstance(seconds, int) else round(seconds * 1_000_000)


def _ceil_ms(micros: int) -> int:
    return -(-micros // 1000)


@dataclass(frozen=True, slots=True)
class Periodic:
    """An ``@app.task(cron=...)`` definition; a scheduler creates or updates its schedule when it starts."""

    task: str
    cron: str
    timezone: str = "UTC"
