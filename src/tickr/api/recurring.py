"""Recurring jobs over HTTP: a schedule from a POST /jobs body, a PATCH applied to one, a one-off job's run.

The schedules themselves are ``tickr.scheduler.manager.Schedules``'s business; this module turns request
bodies into its calls and names each invalid field the way the client spelled it.
"""

from __future__ import annotations

from typing import Any

from tickr.api.models import ONE_OFF_ONLY, RECURRING_ONLY, Body, JobIn, JobPatch
from tickr.api.submission import HTTP_FIELDS, check_http_payload, http_job, invalid
from tickr.api.views import RunOut
from tickr.core.errors import ValidationError
from tickr.core.job import Job
from tickr.core.schedule import Schedule
from tickr.scheduler.manager import Schedules

TEMPLATE_OPTIONS = ("queue", "priority", "max_retries", "timeout", "execution")
SCHEDULE_OPTIONS = (*RECURRING_ONLY, "name", "description")
# What PATCH changes on a recurring job (besides ``backoff`` and the ``http*`` fields, handled apart).
PATCHABLE = ("cron", "payload", *TEMPLATE_OPTIONS, *SCHEDULE_OPTIONS)
NOT_RECURRING = {
    "delay": "not for a recurring job: it runs on its cron",
    "run_at": "not for a recurring job: it runs on its cron",
    "idempotency_key": "not for a recurring job: each run gets its own key",
}


def _as_spelled(body: Body, exc: ValidationError) -> ValidationError:
    """``exc`` with each field that is one of ``body``'s named the way the client spelled it."""
    fields = type(body).model_fields
    return ValidationError(str(exc), {body.spelled(k) if k in fields else k: v for k, v in exc.errors.items()})


async def create(schedules: Schedules, spec: JobIn) -> Schedule:
    """Store the recurring job ``spec`` defines (``spec.cron`` is set); ``ValidationError`` names bad fields."""
    assert spec.cron is not None
    errors = {spec.spelled(name): NOT_RECURRING[name] for name in spec.given(ONE_OFF_ONLY)}
    job_type, payload, http_errors = http_job(spec)
    errors |= http_errors
    if not errors and job_type == "http":
        errors |= check_http_payload(payload, from_fields=bool(HTTP_FIELDS & spec.model_fields_set))
    if errors or job_type is None:
        raise invalid("recurring job", errors)
    options: dict[str, Any] = {name: getattr(spec, name) for name in (*TEMPLATE_OPTIONS, *SCHEDULE_OPTIONS)}
    if spec.backoff is not None:
        options["backoff"] = spec.backoff.model_dump()
    options = {name: value for name, value in options.items() if value is not None}
    try:
        return await schedules.create(job_type, payload, cron=spec.cron, **options)
    except ValidationError as exc:
        raise _as_spelled(spec, exc) from None


def _http_payload(current: dict[str, Any], patch: JobPatch) -> dict[str, Any]:
    """An ``http`` job's payload with the ``http*`` fields of ``patch`` applied (null = unchanged, but for
    ``httpBody``, where null means no body)."""
    out = {
        "method": current.get("method", "GET"),
        "url": current.get("url"),
        "headers": current.get("headers") or {},
        "body": current.get("body"),
    }
    for name in HTTP_FIELDS & patch.model_fields_set:
        value = getattr(patch, name)
        if value is not None or name == "http_body":
            out[name.removeprefix("http_")] = value
    return out


def _changes(schedule: Schedule, patch: JobPatch, errors: dict[str, str]) -> dict[str, Any]:
    """The ``Schedules.update`` keywords of ``patch``; adds to ``errors`` what a recurring job cannot take."""
    for name in patch.given(("delay", "run_at")):
        errors[patch.spelled(name)] = NOT_RECURRING[name]
    changes: dict[str, Any] = {name: getattr(patch, name) for name in patch.given(PATCHABLE)}
    if patch.backoff is not None:
        changes["backoff"] = patch.backoff.model_dump()
    http = sorted(HTTP_FIELDS & patch.model_fields_set)
    is_http = schedule.template.type == "http"
    if http and not is_http:
        errors |= {patch.spelled(name): "only for a job of type http" for name in http}
    elif http and patch.payload is not None:
        errors[patch.spelled("payload")] = "give payload or the http* fields, not both"
    elif http:
        changes["payload"] = _http_payload(schedule.template.payload, patch)
    if not errors and is_http and "payload" in changes:
        errors |= check_http_payload(changes["payload"], from_fields=bool(http))
    return changes


async def patch(schedules: Schedules, schedule: Schedule, patch: JobPatch) -> Schedule:
    """Apply ``patch`` to the recurring job ``schedule``; ``ValidationError`` names bad fields."""
    errors: dict[str, str] = {}
    changes = _changes(schedule, patch, errors)
    if errors:
        raise invalid("change", errors)
    if not changes:
        return schedule
    try:
        return await schedules.update(schedule.id, **changes)
    except ValidationError as exc:
        raise _as_spelled(patch, exc) from None


def one_off_run(job: Job) -> RunOut:
    """A one-off job's history: its single run as its record tells it (latest attempt, status, last error)."""
    duration = job.finished_at - job.started_at if job.finished_at and job.started_at else None
    error = {"type": job.last_error.type, "message": job.last_error.message} if job.last_error else None
    return RunOut.of(
        {
            "job_id": job.id,
            "queue": job.queue,
            "outcome": job.status.value,
            "attempt": job.attempt,
            "fire_time": job.scheduled_for or job.created_at,
            "started_at": job.started_at,
            "finished_at": job.finished_at,
            "duration_ms": duration,
            "error": error,
        }
    )
