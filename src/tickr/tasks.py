"""Task definitions: a handler function plus its defaults, and how payloads map to its arguments."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tickr.core.errors import Permanent
from tickr.core.job import Execution, Priority
from tickr.core.retry import Backoff


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
