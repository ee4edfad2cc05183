"""Converting jobs to and from Redis hash fields. Only non-default fields are stored, to keep memory low."""

from __future__ import annotations

from typing import Any

import orjson

from tickr.core.job import Execution, Job, JobError, JobState, Priority
from tickr.core.retry import Backoff

_DEFAULT_BACKOFF = Backoff()


def dumps(value: Any) -> str:
    """JSON text of ``value`` (orjson; refuses non-JSON types with TypeError)."""
    return orjson.dumps(value).decode()


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
    for name in ("idempotency_key", "name", "description", "schedule_id"):
        value = getattr(job, name)
        if value is not None:
            fields += [name, value]
    return fields


def _opt_int(value: str | None) -> int | None:
    return int(value) if value not in (None, "") else None


def job_from_hash(job_id: str, queue: str, data: dict[str, str]) -> Job:
    """Rebuild a ``Job`` from its hash (``HGETALL``, decoded to str)."""
    error = data.get("error")
    result = data.get("result")
    backoff = data.get("backoff")
    timeout = data.get("timeout")
    return Job(
        id=job_id,
        type=data.get("type", ""),
        payload=loads(data["payload"]) if data.get("payload") else {},
        queue=queue,
        priority=Priority(data.get("priority", "default")),
        status=JobState(data.get("status", "queued")),
        attempt=int(data.get("attempt", 0)),
        max_retries=int(data.get("max_retries", 0)),
        backoff=Backoff(**loads(backoff)) if backoff else _DEFAULT_BACKOFF,
        timeout=float(timeout) if timeout else None,
        execution=Execution(data.get("execution", "at_least_once")),
        idempotency_key=data.get("idempotency_key"),
        name=data.get("name"),
        description=data.get("description"),
        schedule_id=data.get("schedule_id"),
        created_at=_opt_int(data.get("created_at")),
        scheduled_for=_opt_int(data.get("scheduled_for")),
        started_at=_opt_int(data.get("started_at")),
        finished_at=_opt_int(data.get("finished_at")),
        last_error=JobError(**loads(error)) if error else None,
        result=loads(result) if result else None,
        worker=data.get("worker"),
    )


def pairs_to_dict(flat: list[Any]) -> dict[str, str]:
    """``[k1, v1, k2, v2]`` (bytes or str) to a dict of str."""
    out: dict[str, str] = {}
    it = iter(flat)
    for key, value in zip(it, it, strict=True):
        out[key.decode() if isinstance(key, bytes) else key] = value.decode() if isinstance(value, bytes) else value
    return out
