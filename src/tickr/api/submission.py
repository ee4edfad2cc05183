"""Turning API job requests into validated jobs and enqueuing them: one, or a batch in one round trip."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pydantic

from tickr.api.models import RECURRING_ONLY, JobIn
from tickr.api.problems import Problem
from tickr.app import App
from tickr.core.errors import IdempotencyConflict, StoreError, ValidationError
from tickr.core.factory import payload_problem, text_errors
from tickr.core.job import Job, JobState
from tickr.handlers.http import HttpPayload
from tickr.metrics import tracing
from tickr.store.store import EnqueueResult
from tickr.tasks import due_time_ms

JOB_OPTIONS = ("queue", "priority", "max_retries", "timeout", "execution", "idempotency_key")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


HTTP_FIELDS = frozenset({"http_method", "http_url", "http_headers", "http_body"})


def http_job(spec: JobIn) -> tuple[str | None, dict[str, Any], dict[str, str]]:
    """Type and payload, folding the top-level ``http*`` fields into an ``http`` job when given."""
    if not HTTP_FIELDS & spec.model_fields_set:
        return spec.type, spec.payload, ({"type": "Field required"} if spec.type is None else {})
    errors: dict[str, str] = {}
    if spec.http_url is None:
        errors["http_url"] = "required with the other http* fields"
    if spec.type not in (None, "http"):
        errors["type"] = "must be http (or left out) when the http* fields are given"
    if spec.payload:
        errors["payload"] = "give payload or the http* fields, not both"
    payload = {
        "method": spec.http_method or "GET",
        "url": spec.http_url,
        "headers": spec.http_headers or {},
        "body": spec.http_body,
    }
    return "http", payload, errors


def check_http_payload(payload: dict[str, Any], from_fields: bool) -> dict[str, str]:
    """Field errors of an ``http`` job's payload, named as the caller gave them."""
    try:
        HttpPayload.model_validate(payload)
    except pydantic.ValidationError as exc:
        errors = {}
        for error in exc.errors(include_url=False):
            loc = ".".join(str(p) for p in error["loc"])
            field = f"http_{loc}" if from_fields else f"payload.{loc}" if loc else "payload"
            errors[field] = str(error["msg"]).removeprefix("Value error, ")
        return errors
    return {}


def payload_errors(payload: dict[str, Any], from_fields: bool) -> dict[str, str]:
    """``{path: reason}`` of what in ``payload`` cannot be stored (``payload.a[3]``, or ``http_body.a[3]``)."""
    found = payload_problem(payload)
    if found is None:
        return {}
    path, reason = found
    return {"http_" + path.removeprefix("payload.") if from_fields else path: reason}


def invalid(what: str, errors: dict[str, str]) -> ValidationError:
    """The error for ``errors`` (``{field: message}``), e.g. ``invalid job: http_url: required ...``."""
    return ValidationError(f"invalid {what}: " + "; ".join(f"{k}: {v}" for k, v in errors.items()), errors)


def build(tickr: App, spec: JobIn, now: int) -> tuple[Job, int | None]:
    """A validated one-off job and its due time (ms, None = now). ``ValidationError`` names every bad field."""
    job_type, payload, errors = http_job(spec)
    from_fields = bool(HTTP_FIELDS & spec.model_fields_set)
    if not errors and job_type == "http":
        errors = check_http_payload(payload, from_fields=from_fields)
    for name in spec.given(RECURRING_ONLY):
        errors[spec.spelled(name)] = "only for a recurring job (one with cron)"
    if spec.cron is not None:  # only reached in a batch: POST /jobs creates the recurring job
        errors[spec.spelled("cron")] = "a batch takes one-off jobs only: create recurring jobs with POST /api/v1/jobs"
    errors |= {spec.spelled(k): v for k, v in text_errors(name=spec.name, description=spec.description).items()}
    if errors or job_type is None:
        raise invalid("job", errors)
    options: dict[str, Any] = {name: getattr(spec, name) for name in JOB_OPTIONS if getattr(spec, name) is not None}
    if spec.backoff is not None:
        options["backoff"] = spec.backoff.model_dump()
    try:
        job = tickr.build_job(job_type, payload, **options)
    except TypeError as exc:  # the payload cannot be stored (NaN, integers beyond 64 bits, lone surrogates...)
        raise invalid("job", payload_errors(payload, from_fields) or {"payload": str(exc)}) from None
    job.name, job.description = spec.name, spec.description
    return job, due_time_ms(spec.delay, spec.run_at, now)


def build_many(tickr: App, specs: Sequence[JobIn], field: str = "jobs") -> list[tuple[Job, int | None]]:
    """Validate a whole batch first; errors are named ``jobs[<index>].<field>``."""
    now = now_ms()
    built: list[tuple[Job, int | None]] = []
    errors: dict[str, str] = {}
    for index, spec in enumerate(specs):
        try:
            built.append(build(tickr, spec, now))
        except ValidationError as exc:
            for name, message in (exc.errors or {"": str(exc)}).items():
                errors[f"{field}[{index}].{name}" if name else f"{field}[{index}]"] = message
    if errors:
        raise ValidationError(f"{len(errors)} invalid field(s) in the batch", errors)
    return built


async def type_warnings(tickr: App, types: Sequence[str | None]) -> list[str]:
    """A warning per type no worker has ever registered (``ValidationError`` instead with TICKR_STRICT_TYPES)."""
    unknown = [t for t in dict.fromkeys(types) if t is not None and not await tickr.knows_type(t)]
    if unknown and tickr.settings.strict_types:
        raise invalid("job", {"type": f"no worker has registered type {unknown[0]!r} (TICKR_STRICT_TYPES is on)"})
    grace = tickr.settings.unknown_type_grace_seconds
    return [
        f"no worker has registered type {t!r} yet: the job waits up to {grace:g} s for a live worker that runs it"
        for t in unknown
    ]


async def enqueue_one(tickr: App, spec: JobIn) -> tuple[Job, bool]:
    """Enqueue ``spec``; returns the stored job and whether it was created (False: idempotency key known)."""
    job, due = build(tickr, spec, now_ms())
    with tracing.enqueue_span((job,)):
        result = await tickr.store.enqueue(job, due)
    if result.created:
        tickr.count_enqueued((job,))
        return as_created(job, due, result), True  # what was written: no read-back round trip
    stored = (await tickr.store.jobs.get_jobs([(job.queue, result.id)]))[0]
    if stored is None:
        if result.created:
            return job, True  # finished and expired already: report what was enqueued
        raise Problem(
            409,
            f"idempotency key {job.idempotency_key!r} belongs to job {result.id}, which no longer exists",
            slug="idempotency-conflict",
        )
    return stored, result.created


async def enqueue_batch(tickr: App, specs: Sequence[JobIn]) -> tuple[list[Job], int]:
    """Enqueue a validated batch in one round trip; returns the stored jobs and how many were created.

    Every job is validated and encoded before the first is written: a refused batch writes nothing. Past
    that point, a conflicting idempotency key is a 409 and a store failure a 503, both listing the jobs created.
    """
    built = build_many(tickr, specs)
    try:
        with tracing.enqueue_span([job for job, _ in built]):
            results = await tickr.store.enqueue_many(built)
    except IdempotencyConflict as exc:
        tickr.count_enqueued(job for job, _ in built if job.id in set(exc.created))
        message = "idempotency key reused with a different request"
        raise Problem(
            409,
            f"{message} ({len(exc.indexes)} job(s)); the rest of the batch was written",
            slug="idempotency-conflict",
            errors=[{"field": f"jobs[{i}].idempotency_key", "message": message} for i in exc.indexes],
            extra={"created": _indexed(built, set(exc.created))},
        ) from None
    except StoreError as exc:
        raise await interrupted(tickr, built, exc) from exc
    tickr.count_enqueued(job for (job, _), result in zip(built, results, strict=True) if result.created)
    # New jobs are answered with what was written; only those an idempotency key matched are read back.
    known = [i for i, result in enumerate(results) if not result.created]
    stored = await tickr.store.jobs.get_jobs([(built[i][0].queue, results[i].id) for i in known]) if known else []
    found = dict(zip(known, stored, strict=True))
    jobs = [
        as_created(job, due, result) if result.created else found[i] or job
        for i, ((job, due), result) in enumerate(zip(built, results, strict=True))
    ]
    return jobs, sum(1 for result in results if result.created)


def as_created(job: Job, due_ms: int | None, result: EnqueueResult) -> Job:
    """``job`` as the enqueue script stored it: its server-side ``created_at``, status and due time."""
    now = result.created_at
    scheduled_for = max(due_ms or 0, now) if now is not None else due_ms
    return replace(job, created_at=now, scheduled_for=scheduled_for, status=JobState(result.status))


def _indexed(built: Sequence[tuple[Job, int | None]], ids: set[str]) -> list[dict[str, Any]]:
    return [{"index": i, "id": job.id} for i, (job, _) in enumerate(built) if job.id in ids]


async def interrupted(tickr: App, built: Sequence[tuple[Job, int | None]], exc: StoreError) -> Problem:
    """The 503 for a batch the store failed during, saying which jobs it created as far as it can tell.

    Job ids are new, so a job whose record exists right after the failure was created by this batch. Each
    index is in one of ``created`` (``{index, id}``), ``not_created`` or, when the store cannot be read
    either, ``unknown``.
    """
    try:
        found = await tickr.store.jobs.get_jobs([(job.queue, job.id) for job, _ in built])
    except StoreError:
        unknown = list(range(len(built)))
        detail = "could not tell which jobs were created: read them back, or send the batch again with idempotency keys"
        extra: dict[str, Any] = {"created": [], "not_created": [], "unknown": unknown}
    else:
        created = {job.id for job in found if job is not None}
        missing = [i for i, (job, _) in enumerate(built) if job.id not in created]
        detail = f"{len(created)} of {len(built)} jobs were created; send the others (not_created) again"
        extra = {"created": _indexed(built, created), "not_created": missing, "unknown": []}
    return Problem(
        503,
        f"the job store (Redis/Valkey) failed during the batch ({type(exc).__name__}): {detail}",
        slug="batch-interrupted",
        headers={"Retry-After": "5"},
        extra=extra,
    )
