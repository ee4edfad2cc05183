"""The one place that maps exceptions to RFC 9457 ``application/problem+json`` responses.

RequestValidationError, tickr ValidationError   422  with ``errors: [{field, message}]``
JobNotFound                                      404
InvalidState                                     409
StoreError (incl. StoreUnavailable)              503
ConfigError (e.g. no Redis URL)                  503
Problem (raised by routes), HTTPException        their status
anything else                                    500 (logged)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from tickr.core.errors import ConfigError, InvalidState, JobNotFound, StoreError, ValidationError

log = logging.getLogger("tickr.api")

PROBLEM_JSON = "application/problem+json"
LOCATIONS = ("body", "query", "path", "header", "cookie")


def problem_type(slug: str) -> str:
    """The ``type`` URI of a tickr problem."""
    return f"urn:tickr:problem:{slug}"


class Problem(Exception):
    """An HTTP error a route raises on purpose; rendered as problem+json."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        slug: str | None = None,
        errors: Sequence[Mapping[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.slug = slug
        self.errors = list(errors) if errors is not None else None
        self.headers = dict(headers or {})


def problem_body(
    status: int, detail: str, *, slug: str | None = None, errors: Sequence[Mapping[str, str]] | None = None
) -> bytes:
    """The JSON bytes of a problem document (also used by the pure-ASGI middlewares)."""
    document: dict[str, Any] = {
        "type": problem_type(slug) if slug else "about:blank",
        "title": _title(status),
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        document["errors"] = list(errors)
    return orjson.dumps(document)


def problem_response(
    status: int,
    detail: str,
    *,
    slug: str | None = None,
    errors: Sequence[Mapping[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    return Response(
        problem_body(status, detail, slug=slug, errors=errors),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=dict(headers or {}),
    )


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def field_name(loc: Sequence[str | int]) -> str:
    """``("body", "jobs", 3, "priority")`` -> ``jobs[3].priority``; the location prefix is dropped."""
    parts = list(loc)
    if parts and parts[0] in LOCATIONS:
        location = str(parts.pop(0))
        if not parts:
            return location
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def validation_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    """One ``{field, message}`` per error FastAPI/pydantic found."""
    out = []
    for error in exc.errors():
        loc = tuple(error.get("loc", ()))
        if error.get("type") == "json_invalid":
            loc = loc[:1]  # the character position is not a field
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        out.append({"field": field_name(loc) or "body", "message": message})
    return out


def tickr_errors(exc: ValidationError) -> list[dict[str, str]]:
    if not exc.errors:
        return [{"field": "body", "message": str(exc)}]
    return [{"field": field, "message": message} for field, message in exc.errors.items()]


async def _request_validation(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = validation_errors(exc)
    return problem_response(422, "the request is not valid", slug="validation", errors=errors)


async def _tickr_validation(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ValidationError)
    return problem_response(422, str(exc), slug="validation", errors=tickr_errors(exc))


async def _not_found(_: Request, exc: Exception) -> Response:
    return problem_response(404, str(exc), slug="job-not-found")


async def _invalid_state(_: Request, exc: Exception) -> Response:
    return problem_response(409, str(exc), slug="invalid-state")


async def _unavailable(_: Request, exc: Exception) -> Response:
    log.warning("store unavailable: %s", exc)
    detail = f"the job store (Redis/Valkey) is unavailable: {type(exc).__name__}"
    return problem_response(503, detail, slug="store-unavailable", headers={"Retry-After": "5"})


async def _config(_: Request, exc: Exception) -> Response:
    return problem_response(503, f"tickr is not configured to serve this: {exc}", slug="not-configured")


async def _problem(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return problem_response(exc.status, exc.detail, slug=exc.slug, errors=exc.errors, headers=exc.headers)


async def _http(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    return problem_response(exc.status_code, str(exc.detail), headers=exc.headers)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error in %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(500, "internal error; see the server log", slug="internal")


def install(api: FastAPI) -> None:
    """Register every exception handler on ``api``."""
    api.add_exception_handler(RequestValidationError, _request_validation)
    api.add_exception_handler(ValidationError, _tickr_validation)
    api.add_exception_handler(JobNotFound, _not_found)
    api.add_exception_handler(InvalidState, _invalid_state)
    api.add_exception_handler(StoreError, _unavailable)
    api.add_exception_handler(ConfigError, _config)
    api.add_exception_handler(Problem, _problem)
    api.add_exception_handler(StarletteHTTPException, _http)
    api.add_exception_handler(Exception, _unexpected)
