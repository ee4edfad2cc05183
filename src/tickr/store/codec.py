"""Converting jobs to and from Redis hash fields. Only non-default fields are stored, to keep memory low."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from tickr.core.errors import ValidationError
from tickr.core.factory import has_lone_surrogate, payload_problem
from tickr.core.job import Execution, Job, JobError, JobState, Priority
from tickr.core.retry import Backoff

_DEFAULT_BACKOFF = Backoff()
_TEXT_FIELDS = ("type", "idempotency_key", "name", "description", "schedule_id")


def dumps(value: Any) -> str:
    """JSON text of ``value`` (orjson). TypeError for what it refuses: non-JSON types, integers beyond 64 bits,
    lone surrogates, lists and objects nested deeper than 254 levels (``core.factory.payload_problem`` finds
    each of these first, naming the path)."""
    return orjson.dumps(value).decode()


def payload_json(job: Job) -> str:
    """The payload's JSON text, once every free-text field of ``job`` is known to be encodable.

    ``ValidationError`` naming the field otherwise: bad input is refused before anything is written,
    never halfway through a write.
    """
    for name in _TEXT_FIELDS:
        value = getattr(job, name)
        if value is not None and has_lone_surrogate(value):
            reason = "string with a lone surrogate"
            raise ValidationError(f"invalid job: {name}: {reason}", {name: reason})
    try:
        return dumps(job.payload)
    except TypeError as exc:
        path, reason = payload_problem(job.payload) or ("payload", str(exc))
        raise ValidationError(f"payload is not JSON-serialisable: {path} ({reason})", {path: reason}) from None


def fingerprint(job: Job) -> str:
    """SHA-1 hex of what a request for ``job`` asked for: two requests with one idempotency key must agree.

    Type, payload (keys sorted), queue, priority, retries, backoff, timeout, execution, name and description;
    not the due time (a retried request with a relative ``delay`` computes another one).
    """
    request = [
        job.type,
        job.payload,
        job.queue,
        job.priority.value,
        job.max_retries,
        job.backoff.to_dict(),
        job.timeout,
        job.execution.value,
        job.name,
        job.description,
    ]
    return hashlib.sha1(orjson.dumps(request, option=orjson.OPT_SORT_KEYS), usedforsecurity=False).hexdigest()


def loads(text: str | bytes) -> Any:
    return orjson.loads(text)


def job_fields(job: Job, payload_json: str) -> list[str]:
    """The hash fields written at enqueue, as a flat ``[field, value, ...]`` list.

    ``id`` and ``queue`` are not stored: they are part of the key.
    """
    fields = [
        "type",
        job.type,
        "payload",
        payload_json,
        "priority",
        job.priority.value,
        "max_retries",
        str(job.max_retries),
    ]
    if job.backoff != _DEFAULT_BACKOFF:
        fields += ["backoff", dumps(job.backoff.to_dict())]
    if job.timeout is not None:
        fields += ["timeout", repr(float(job.timeout))]
    if job.execution is not Execution.AT_LEAST_ONCE:
        fields += ["execution", job.execution.value]
    for name in ("idempotency_key", "name", "description", "schedule_id", "traceparent"):
        value = getattr(job, name)
        if value is not None:
            fields += [name, value]
    return fields


def _opt_int(value: str | None) -> int | None:
    return int(value) if value not in (None, "") else None


_PRIORITY = {p.value: p for p in Priority}
_STATE = {s.value: s for s in JobState}
_EXECUTION = {e.value: e for e in Execution}


def job_from_hash(job_id: str, queue: str, data: dict[str, str]) -> Job:
    """Rebuild a ``Job`` from its hash (``HGETALL``, decoded to str).

    Hot path of every dequeue: enums come from lookup tables, absent fields cost nothing.
    """
    get = data.get
    error = get("error")
    result = get("result")
    backoff = get("backoff")
    timeout = get("timeout")
    payload = get("payload")
    return Job(
        id=job_id,
        type=get("type", ""),
        payload=loads(payload) if payload else {},
        queue=queue,
        priority=_PRIORITY.get(get("priority", "default")) or Priority(data["priority"]),
        status=_STATE.get(get("status", "queued")) or JobState(data["status"]),
        attempt=int(get("attempt", 0)),
        max_retries=int(get("max_retries", 0)),
        backoff=Backoff(**loads(backoff)) if backoff else _DEFAULT_BACKOFF,
        timeout=float(timeout) if timeout else None,
        execution=_EXECUTION.get(get("execution", "at_least_once")) or Execution(data["execution"]),
        idempotency_key=get("idempotency_key"),
        name=get("name"),
        description=get("description"),
        schedule_id=get("schedule_id"),
        created_at=_opt_int(get("created_at")),
        scheduled_for=_opt_int(get("scheduled_for")),
        started_at=_opt_int(get("started_at")),
        finished_at=_opt_int(get("finished_at")),
        last_error=JobError(**loads(error)) if error else None,
        result=loads(result) if result else None,
        worker=get("worker"),
        traceparent=get("traceparent"),
    )


def pairs_to_dict(flat: list[Any]) -> dict[str, str]:
    """``[k1, v1, k2, v2]`` (bytes or str) to a dict of str; a later pair wins over an earlier one."""
    if len(flat) % 2:
        raise ValueError("pairs_to_dict: odd number of items")
    if not flat or not isinstance(flat[0], bytes):  # a decoding client: all str
        it = iter(flat)
        return dict(zip(it, it, strict=True))
    out: dict[str, str] = {}
    it = iter(flat)
    for key, value in zip(it, it, strict=True):
        out[key.decode() if isinstance(key, bytes) else key] = value.decode() if isinstance(value, bytes) else value
    return out


def lenient_int(value: Any) -> int | None:
    """``int(value)``, or None for a missing or malformed Redis field (a counter, a pid)."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
