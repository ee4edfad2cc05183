"""Demo and utility job types: ``noop``, ``sleep``, ``flaky``, ``fail``, ``email`` and ``report``."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import logging
import os
import random
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib
import orjson
from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator

from tickr.context import current_job
from tickr.core.errors import ConfigError, Permanent, Retry
from tickr.handlers._payload import parse_payload

email_logger = logging.getLogger("tickr.handlers.email")

MAX_SLEEP_MS = 3_600_000
MAX_REPORT_ROWS = 1_000_000
SMTP_TIMEOUT_SECONDS = 30.0


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoopPayload(BaseModel):
    """Any JSON object; its contents are ignored."""

    model_config = ConfigDict(extra="allow")


async def noop(payload: dict[str, Any]) -> None:
    """Do nothing and return None. The payload must be a JSON object; its contents are ignored."""
    if not isinstance(payload, dict):
        raise Permanent(f"invalid noop payload: expected a JSON object, got {type(payload).__name__}")


class SleepPayload(_Payload):
    """``{"ms": n}`` or ``{"sleep_ms": n}``, 0 <= n <= 3_600_000."""

    ms: int | None = Field(None, ge=0, le=MAX_SLEEP_MS, strict=True)
    sleep_ms: int | None = Field(None, ge=0, le=MAX_SLEEP_MS, strict=True)

    @model_validator(mode="after")
    def _one_duration(self) -> SleepPayload:
        if (self.ms is None) == (self.sleep_ms is None):
            raise ValueError("give exactly one of ms or sleep_ms (milliseconds, 0..3600000)")
        return self

    @property
    def duration_ms(self) -> int:
        """The requested sleep in milliseconds."""
        return self.ms if self.ms is not None else self.sleep_ms or 0


async def sleep(payload: dict[str, Any]) -> dict[str, int]:
    """Sleep ``ms`` (or ``sleep_ms``) milliseconds; returns ``{"slept_ms": n}``."""
    job = parse_payload(SleepPayload, payload, "sleep")
    await asyncio.sleep(job.duration_ms / 1000)
    return {"slept_ms": job.duration_ms}


class FlakyPayload(_Payload):
    """``{"fail_times": n, "message": "..."}``."""

    fail_times: int = Field(1, ge=0, strict=True)
    message: str | None = None


async def flaky(payload: dict[str, Any]) -> dict[str, int]:
    """Raise ``RuntimeError`` on attempts 1..fail_times, then return ``{"attempts": attempt}``."""
    job = parse_payload(FlakyPayload, payload, "flaky")
    attempt = current_job().attempt
    if attempt <= job.fail_times:
        raise RuntimeError(job.message or f"flaky job failing on attempt {attempt} of {job.fail_times}")
    return {"attempts": attempt}


class FailPayload(_Payload):
    """``{}`` or ``{"message": "..."}``."""

    message: str = "fail job always fails"


async def fail(payload: dict[str, Any]) -> None:
    """Always raise ``RuntimeError(message)`` - a retryable failure that ends in the dead-letter queue."""
    job = parse_payload(FailPayload, payload, "fail")
    raise RuntimeError(job.message)


_EMAIL = re.compile(r"^[^@\s,;<>\"]+@[^@\s,;<>\"]+$")


class EmailPayload(_Payload):
    """``{"to": "a@b.example", "subject": "...", "body": "..."}``."""

    to: str
    subject: str = Field(max_length=998)
    body: str = ""

    @field_validator("to")
    @classmethod
    def _check_to(cls, value: str) -> str:
        value = value.strip()
        domain = value.rpartition("@")[2]
        if not _EMAIL.match(value) or "." not in domain.strip(".") or domain.startswith(".") or domain.endswith("."):
            raise ValueError(f"not an email address: {value!r}")
        return value

    @field_validator("subject")
    @classmethod
    def _check_subject(cls, value: str) -> str:
        if "\r" in value or "\n" in value:
            raise ValueError("must be a single line")
        return value


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    """Where and how to send mail, parsed from ``settings.smtp_url``."""

    hostname: str
    port: int
    username: str | None
    password: str | None
    use_tls: bool
    start_tls: bool | None
    sender: str


def parse_smtp_url(url: str) -> SmtpTarget:
    """Parse ``smtp[s]://[user:pass@]host[:port][?starttls=true&from=addr]``; raises ``ConfigError``."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ConfigError(f"TICKR_SMTP_URL must look like smtp://user:pass@host:port or smtps://..., got {scheme!r}")
    try:
        port = parts.port or (465 if scheme == "smtps" else 25)
    except ValueError as exc:
        raise ConfigError(f"TICKR_SMTP_URL has a bad port: {exc}") from None
    query = {key.lower(): values[-1] for key, values in parse_qs(parts.query).items()}
    start_tls: bool | None = None
    if "starttls" in query:
        start_tls = query["starttls"].strip().lower() in ("1", "true", "yes", "on")
    return SmtpTarget(
        hostname=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        use_tls=scheme == "smtps",
        start_tls=False if scheme == "smtps" else start_tls,
        sender=query.get("from", "tickr@localhost"),
    )


async def _send_smtp(target: SmtpTarget, message: EmailMessage) -> None:
    where = f"SMTP {target.hostname}:{target.port}"
    try:
        await aiosmtplib.send(
            message,
            hostname=target.hostname,
            port=target.port,
            username=target.username,
            password=target.password,
            use_tls=target.use_tls,
            start_tls=target.start_tls,
            timeout=SMTP_TIMEOUT_SECONDS,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [r.code for r in exc.recipients]
        if codes and all(code >= 500 for code in codes):
            raise Permanent(f"{where} refused the recipient: {exc}") from exc
        raise Retry(f"{where} refused the recipient for now: {exc}") from exc
    except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError) as exc:
        raise Retry(f"{where}: {exc}") from exc
    except aiosmtplib.SMTPResponseException as exc:
        if exc.code >= 500:
            raise Permanent(f"{where}: {exc.code} {exc.message}") from exc
        raise Retry(f"{where}: {exc.code} {exc.message}") from exc
    except OSError as exc:
        raise Retry(f"{where}: {exc}") from exc


async def email(payload: dict[str, Any]) -> dict[str, Any]:
    """Send an email through ``settings.smtp_url``, or log it when unset; returns ``{"to", "sent"}``."""
    job = parse_payload(EmailPayload, payload, "email")
    ctx = current_job()
    if not ctx.settings.smtp_url:
        email_logger.info(
            "email (no SMTP configured) to=%s subject=%s\n%s",
            job.to,
            job.subject,
            job.body,
            extra={"job_id": ctx.job_id},
        )
        return {"to": job.to, "sent": False}
    target = parse_smtp_url(ctx.settings.smtp_url.get_secret_value())
    message = EmailMessage()
    message["From"] = target.sender
    message["To"] = job.to
    message["Subject"] = job.subject
    message["X-Tickr-Job-Id"] = ctx.job_id
    message.set_content(job.body)
    await _send_smtp(target, message)
    return {"to": job.to, "sent": True}


Row = dict[str, JsonValue]


class ReportPayload(_Payload):
    """``{"name": "daily-sales", "rows": 100}`` (that many generated rows) or ``{"name": "sales", "rows": [{...}]}``
    (those objects, one line each, their keys the columns in the order first seen)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    rows: (
        Annotated[int, Field(ge=1, le=MAX_REPORT_ROWS, strict=True)]
        | Annotated[list[Row], Field(min_length=1, max_length=MAX_REPORT_ROWS)]
    ) = 100

    @field_validator("rows", mode="before")
    @classmethod
    def _check_rows(cls, value: Any) -> Any:
        # One message naming ``rows`` instead of one per member of the union.
        if isinstance(value, list):
            if not 1 <= len(value) <= MAX_REPORT_ROWS:
                raise ValueError(f"must hold 1 to {MAX_REPORT_ROWS} rows (got {len(value)})")
            bad = next((i for i, row in enumerate(value) if not isinstance(row, dict)), None)
            if bad is not None:
                raise ValueError(f"row {bad} is not an object (each row is an object: column -> value)")
        elif isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_REPORT_ROWS:
            raise ValueError(f"must be a row count from 1 to {MAX_REPORT_ROWS}, or a list of row objects")
        return value


def _generated(name: str, rows: int, seed: str) -> tuple[list[str], Iterable[Sequence[Any]]]:
    """Demo data: ``rows`` lines of id, name, value, created_at."""
    rng = random.Random(seed)  # deterministic demo data, not for security
    base = datetime.now(UTC).replace(microsecond=0)
    lines = (
        (i, f"{name}-{i}", f"{rng.uniform(0, 1000):.2f}", (base - timedelta(seconds=rows - i)).isoformat())
        for i in range(1, rows + 1)
    )
    return ["id", "name", "value", "created_at"], lines


def _cell(value: JsonValue) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return orjson.dumps(value).decode()  # a nested list or object, as compact JSON


def _from_data(rows: list[Row]) -> tuple[list[str], Iterable[Sequence[Any]]]:
    """The given rows: every key seen is a column (first seen first); a row without one leaves it empty."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    return columns, ([_cell(row.get(column)) for column in columns] for row in rows)


def _write_report(path: Path, header: Sequence[str], lines: Iterable[Sequence[Any]]) -> None:
    """Write the CSV to a temporary file beside ``path`` and rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows(lines)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


async def report(payload: dict[str, Any]) -> dict[str, Any]:
    """Write ``<data_dir>/reports/<name>-<job_id>.csv``: ``rows`` generated rows, or the ``rows`` objects given;
    returns ``{"path", "rows"}``."""
    job = parse_payload(ReportPayload, payload, "report")
    ctx = current_job()
    safe_id = re.sub(r"[^A-Za-z0-9_.-]", "_", ctx.job_id)
    path = (Path(ctx.settings.data_dir) / "reports" / f"{job.name}-{safe_id}.csv").absolute()
    if isinstance(job.rows, int):
        header, lines = _generated(job.name, job.rows, ctx.job_id)
        count = job.rows
    else:
        header, lines = _from_data(job.rows)
        count = len(job.rows)
    await asyncio.to_thread(_write_report, path, header, lines)
    return {"path": str(path), "rows": count}
