"""The one place that maps exceptions to RFC 9457 ``application/problem+json`` responses.

RequestValidationError, tickr ValidationError   422  with ``errors: [{field, message}]``
  ... of a body that is not JSON                 400  ``invalid-json``, the position in ``detail``
  ... not UTF-8 or nested too deeply to parse    400  ``invalid-json``
UnicodeEncodeError                               422  a string the store cannot encode (fields are checked first)
JobNotFound                                      404
InvalidState                                     409
IdempotencyConflict                              409  ``idempotency-conflict``
StoreError (incl. StoreUnavailable)              503
ReplicationShortfall (a StoreError)              503  ``replication-shortfall``: written, but not on enough replicas
HistoryUnavailable, sqlalchemy DBAPIError        503  ``history-unavailable`` (the SQL history database)
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
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from tickr.core.errors import (
    ConfigError,
    IdempotencyConflict,
    InvalidState,
    JobNotFound,
    ReplicationShortfall,
    StoreError,
    ValidationError,
)
from tickr.core.factory import has_lone_surrogate
from tickr.history.queries import HistoryUnavailable

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
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.slug = slug
        self.errors = list(errors) if errors is not None else None
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})  # extension members of the problem document (RFC 9457 section 3.2)


def problem_body(
    status: int,
    detail: str,
    *,
    slug: str | None = None,
    errors: Sequence[Mapping[str, str]] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> bytes:
    """The JSON bytes of a problem document (also used by the pure-ASGI middlewares)."""
    document: dict[str, Any] = {
        **(extra or {}),
        "type": problem_type(slug) if slug else "about:blank",
        "title": _title(status),
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        document["errors"] = list(errors)
    try:
        return orjson.dumps(document)
    except TypeError:  # a field name or message echoing a lone surrogate the client sent: show it escaped
        return orjson.dumps(_escaped(document))


def _escaped(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode() if has_lone_surrogate(value) else value
    if isinstance(value, Mapping):
        return {_escaped(k): _escaped(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_escaped(v) for v in value]
    return value


def problem_response(
    status: int,
    detail: str,
    *,
    slug: str | None = None,
    errors: Sequence[Mapping[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Response:
    return Response(
        problem_body(status, detail, slug=slug, errors=errors, extra=extra),
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


def invalid_json_detail(exc: RequestValidationError) -> str | None:
    """``invalid JSON at line 1, column 9 (character 8): Expecting ...`` when the body did not parse, else None."""
    for error in exc.errors():
        if error.get("type") != "json_invalid":
            continue
        loc = tuple(error.get("loc", ()))
        reason = str((error.get("ctx") or {}).get("error") or error.get("msg") or "not JSON")
        position = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else None
        if position is None:
            return f"invalid JSON: {reason}"
        text = exc.body if isinstance(exc.body, str) else ""
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
        return f"invalid JSON at line {line}, column {column} (character {position}): {reason}"
    return None


async def _request_validation(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    not_json = invalid_json_detail(exc)
    if not_json is not None:
        return problem_response(400, not_json, slug="invalid-json")
    errors = validation_errors(exc)
    return problem_response(422, "the request is not valid", slug="validation", errors=errors)


async def _tickr_validation(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ValidationError)
    return problem_response(422, str(exc), slug="validation", errors=tickr_errors(exc))


async def _not_found(_: Request, exc: Exception) -> Response:
    return problem_response(404, str(exc), slug="job-not-found")


async def _invalid_state(_: Request, exc: Exception) -> Response:
    return problem_response(409, str(exc), slug="invalid-state")


async def _idempotency_conflict(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, IdempotencyConflict)
    return problem_response(409, str(exc), slug="idempotency-conflict")


async def _unencodable(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, UnicodeEncodeError)
    detail = f"a string in the request cannot be stored (UTF-8 only, no lone surrogates): {exc.reason}"
    return problem_response(422, detail, slug="validation", errors=[{"field": "body", "message": detail}])


async def _unavailable(_: Request, exc: Exception) -> Response:
    log.warning("store unavailable: %s", exc)
    detail = f"the job store (Redis/Valkey) is unavailable: {type(exc).__name__}"
    return problem_response(503, detail, slug="store-unavailable", headers={"Retry-After": "5"})


async def _replication_shortfall(_: Request, exc: Exception) -> Response:
    log.warning("replication shortfall: %s", exc)
    detail = f"not acknowledged: {exc}; the change may or may not survive a failover (retry with an idempotency key)"
    return problem_response(503, detail, slug="replication-shortfall", headers={"Retry-After": "1"})


async def _history_unavailable(_: Request, exc: Exception) -> Response:
    log.warning("history database unavailable: %s", exc)
    detail = str(exc) if isinstance(exc, HistoryUnavailable) else f"the history database failed: {type(exc).__name__}"
    return problem_response(503, detail, slug="history-unavailable", headers={"Retry-After": "5"})


async def _config(_: Request, exc: Exception) -> Response:
    return problem_response(503, f"tickr is not configured to serve this: {exc}", slug="not-configured")


async def _problem(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return problem_response(
        exc.status, exc.detail, slug=exc.slug, errors=exc.errors, headers=exc.headers, extra=exc.extra
    )


async def _http(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    cause = exc.__cause__
    if exc.status_code == 400 and isinstance(cause, UnicodeDecodeError | RecursionError):  # FastAPI's body parsing
        reason = "nested too deeply" if isinstance(cause, RecursionError) else f"not UTF-8 ({cause.reason})"
        return problem_response(400, f"invalid JSON: {reason}", slug="invalid-json")
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
    api.add_exception_handler(IdempotencyConflict, _idempotency_conflict)
    api.add_exception_handler(UnicodeEncodeError, _unencodable)
    api.add_exception_handler(ReplicationShortfall, _replication_shortfall)
    api.add_exception_handler(StoreError, _unavailable)
    api.add_exception_handler(HistoryUnavailable, _history_unavailable)
    api.add_exception_handler(DBAPIError, _history_unavailable)
    api.add_exception_handler(ConfigError, _config)
    api.add_exception_handler(Problem, _problem)
    api.add_exception_handler(StarletteHTTPException, _http)
    api.add_exception_handler(Exception, _unexpected)
