"""Building a new, validated job from what a caller asked for."""

from __future__ import annotations

import math
import re
from typing import Any

import uuid_utils

from tickr.core.errors import ValidationError
from tickr.core.job import Execution, Job, JobState, Priority, validate_queue_name, validate_type_name
from tickr.core.retry import Backoff

MAX_IDEMPOTENCY_KEY = 256
# The deepest nesting of lists and objects ``store.codec.dumps`` (orjson) encodes; the payload is level 1.
MAX_DEPTH = 254
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1


def new_job_id() -> str:
    """A new UUIDv7 (time-ordered) job id."""
    return str(uuid_utils.uuid7())


def has_lone_surrogate(text: str) -> bool:
    """True when ``text`` holds a surrogate code point, which UTF-8 (so Redis and JSON) cannot carry."""
    return not text.isascii() and _SURROGATE.search(text) is not None


def _shown(key: str) -> str:
    """``key`` as it may appear in a path: a lone surrogate is shown escaped (``\\ud800``), never sent on."""
    return key.encode("utf-8", "backslashreplace").decode() if has_lone_surrogate(key) else key


def payload_problem(value: Any, path: str = "payload", depth: int = 1) -> tuple[str, str] | None:
    """``(path, reason)`` of the first value in ``value`` the store's encoder refuses, or None if it takes all.

    Exactly what ``store.codec.dumps`` (orjson) refuses, plus what is not JSON: other types, NaN/Infinity
    (orjson would write null), tuples nested deeper than ``MAX_DEPTH`` (orjson does not count them and
    crashes). ``depth`` is the nesting level of ``value`` (the payload itself is level 1).
    """
    if isinstance(value, str):
        return (path, "string with a lone surrogate") if has_lone_surrogate(value) else None
    if isinstance(value, dict | list | tuple):
        if depth > MAX_DEPTH:
            return path, f"nested deeper than {MAX_DEPTH} levels"
        return _container_problem(value, path, depth)
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):  # JSON encoders here take 64-bit integers only
        return None if _INT_MIN <= value <= _INT_MAX else (path, "integer beyond 64 bits")
    if isinstance(value, float):
        return None if math.isfinite(value) else (path, "non-finite float")
    return path, type(value).__name__


def _container_problem(
    value: dict[Any, Any] | list[Any] | tuple[Any, ...], path: str, depth: int
) -> tuple[str, str] | None:
    if isinstance(value, dict):
        for key, item in value.items():
            if type(key) is not str:  # orjson refuses str subclasses as keys too
                return f"{path}.{key!r}", "non-string key"
            if has_lone_surrogate(key):
                return f"{path}.{_shown(key)}", "key with a lone surrogate"
            found = payload_problem(item, f"{path}.{key}", depth + 1)
            if found:
                return found
        return None
    for index, item in enumerate(value):
        found = payload_problem(item, f"{path}[{index}]", depth + 1)
        if found:
            return found
    return None


def unserializable_path(value: Any, path: str = "payload") -> str | None:
    """``"<path> (<reason>)"`` of the first value in ``value`` the store cannot encode, or None if all is JSON."""
    found = payload_problem(value, path)
    return f"{found[0]} ({found[1]})" if found else None


def check_payload(payload: Any) -> dict[str, Any]:
    """Return ``payload`` if it is a JSON object; ``TypeError`` naming the first bad field otherwise.

    ``payload_problem`` gives the same finding as ``(path, reason)``, for errors that name the field.
    """
    if not isinstance(payload, dict):
        raise TypeError(f"payload must be a JSON object (dict), not {type(payload).__name__}")
    bad = unserializable_path(payload)  # one walk, no encoding: the store encodes the payload once
    if bad:
        raise TypeError(f"payload is not JSON-serialisable: {bad}")
    return payload


def text_errors(**fields: str | None) -> dict[str, str]:
    """``{field: message}`` for each given string the store cannot encode (a lone surrogate)."""
    return {name: "string with a lone surrogate" for name, text in fields.items() if text and has_lone_surrogate(text)}


def new_job(
    type: str,
    payload: dict[str, Any] | None = None,
    *,
    queue: str = "default",
    priority: Priority | str = Priority.DEFAULT,
    max_retries: int = 3,
    backoff: Backoff | dict[str, float] | None = None,
    timeout: float | None = None,
    execution: Execution | str = Execution.AT_LEAST_ONCE,
    idempotency_key: str | None = None,
    name: str | None = None,
    description: str | None = None,
    schedule_id: str | None = None,
) -> Job:
    """A validated new job with a fresh id. Raises ``ValidationError`` or ``TypeError`` (payload)."""
    errors: dict[str, str] = {}
    for field_name, check in (("type", validate_type_name), ("queue", validate_queue_name)):
        try:
            check(type if field_name == "type" else queue)
        except ValidationError as exc:
            errors.update(exc.errors)
    resolved_priority, resolved_execution = Priority.DEFAULT, Execution.AT_LEAST_ONCE
    try:
        resolved_priority = priority if isinstance(priority, Priority) else Priority(priority)
    except ValueError:
        errors["priority"] = "must be one of critical, high, default, low"
    try:
        resolved_execution = execution if isinstance(execution, Execution) else Execution(execution)
    except ValueError:
        errors["execution"] = "must be at_least_once or at_most_once"
    if not isinstance(max_retries, int) or isinstance(max_retries, bool) or not 0 <= max_retries <= 1000:
        errors["max_retries"] = "must be an integer from 0 to 1000"
    if timeout is not None and not (isinstance(timeout, int | float) and 0 < timeout <= 86_400):
        errors["timeout"] = "must be a number of seconds above 0 and at most 86400"
    if idempotency_key is not None and not (0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY):
        errors["idempotency_key"] = f"must be 1 to {MAX_IDEMPOTENCY_KEY} characters"
    errors |= text_errors(idempotency_key=idempotency_key, name=name, description=description, schedule_id=schedule_id)
    try:
        resolved_backoff = Backoff.from_value(backoff)
    except (TypeError, ValueError) as exc:
        errors["backoff"] = str(exc)
        resolved_backoff = Backoff()
    if errors:
        raise ValidationError("invalid job: " + "; ".join(f"{k}: {v}" for k, v in errors.items()), errors)
    return Job(
        id=new_job_id(),
        type=type,
        payload=check_payload(payload if payload is not None else {}),
        queue=queue,
        priority=resolved_priority,
        status=JobState.QUEUED,
        max_retries=max_retries,
        backoff=resolved_backoff,
        timeout=float(timeout) if timeout is not None else None,
        execution=resolved_execution,
        idempotency_key=idempotency_key,
        name=name,
        description=description,
        schedule_id=schedule_id,
    )
