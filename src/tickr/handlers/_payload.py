"""Payload validation shared by the built-in handlers: a bad payload is a ``Permanent`` failure."""

from __future__ import annotations

from typing import Any, TypeVar

import pydantic

from tickr.core.errors import Permanent

ModelT = TypeVar("ModelT", bound=pydantic.BaseModel)


def parse_payload(model: type[ModelT], payload: Any, job_type: str) -> ModelT:
    """Validate ``payload`` against ``model``; raise ``Permanent`` naming every bad field."""
    if not isinstance(payload, dict):
        raise Permanent(f"invalid {job_type} payload: expected a JSON object, got {type(payload).__name__}")
    try:
        return model.model_validate(payload)
    except pydantic.ValidationError as exc:
        raise Permanent(f"invalid {job_type} payload: {describe_errors(exc)}") from None


def describe_errors(exc: pydantic.ValidationError) -> str:
    """``"url: Field required; method: ..."`` - one entry per error, dotted field paths."""
    parts: list[str] = []
    for error in exc.errors(include_url=False):
        field = ".".join(str(p) for p in error["loc"]) or "payload"
        message = str(error["msg"])
        # Errors raised by our own validators arrive as "Value error, <message>".
        message = message.removeprefix("Value error, ")
        parts.append(f"{field}: {message}")
    return "; ".join(parts)
