"""The ``http`` job type: send one HTTP request, guarded against SSRF, optionally HMAC-signed.

Every request carries ``X-Tickr-Job-Id`` and ``X-Tickr-Attempt``. When ``TICKR_HTTP_SIGNING_SECRET`` is
set it also carries ``X-Tickr-Timestamp: <unix seconds>`` and
``X-Tickr-Signature: sha256=<hex HMAC-SHA256(secret, b"<timestamp>." + raw body bytes)>`` (empty body for
GET and friends). A receiver checks it with :func:`verify`, which compares in constant time and rejects
timestamps more than ``tolerance`` seconds (default 300) away from its clock, so captured requests
cannot be replayed later.

Outcomes: 2xx returns ``{"status_code", "duration_ms", "response_excerpt"}``; 408, 429 and 5xx retry
(honouring ``Retry-After``, capped at one hour); connection errors and timeouts retry; redirects are not
followed and, like every other 4xx, fail permanently.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import email.utils
import functools
import hashlib
import hmac
import ipaddress
import json
import os
import re
import ssl
import time
from collections.abc import AsyncGenerator
from datetime import UTC
from typing import Any, cast
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator

from tickr.context import current_job
from tickr.core.errors import Permanent, Retry
from tickr.handlers import ssrf
from tickr.handlers._payload import parse_payload

ALLOWED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
MAX_TIMEOUT_SECONDS = 3600.0
RETRY_AFTER_CAP_SECONDS = 3600.0
EXCERPT_BYTES = 1024
SIGNATURE_TOLERANCE_SECONDS = 300

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_RESERVED_HEADERS = ("host", "content-length", "transfer-encoding", "connection")


class HttpPayload(BaseModel):
    """Payload of an ``http`` job."""

    model_config = ConfigDict(extra="forbid")

    method: str = "GET"
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    body: JsonValue = None
    timeout: float = Field(90.0, gt=0, le=MAX_TIMEOUT_SECONDS, allow_inf_nan=False, strict=True)

    @field_validator("method")
    @classmethod
    def _check_method(cls, value: str) -> str:
        method = value.strip().upper()
        if method not in ALLOWED_METHODS:
            raise ValueError(f"must be one of {', '.join(ALLOWED_METHODS)} (got {value!r})")
        return method

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        try:
            parts = urlsplit(value)
            _ = parts.port  # raises ValueError on a bad port
            httpx.URL(value)
        except (ValueError, httpx.InvalidURL) as exc:
            raise ValueError(f"not a valid URL: {exc}") from None
        if parts.scheme.lower() not in ("http", "https"):
            raise ValueError(f"only http:// and https:// URLs are allowed (got {parts.scheme or 'no'} scheme)")
        if not parts.hostname:
            raise ValueError("URL has no host")
        return value

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, header_value in value.items():
            if not _TOKEN.match(name):
                raise ValueError(f"invalid header name {name!r}")
            lowered = name.lower()
            if lowered in _RESERVED_HEADERS or lowered.startswith("x-tickr-"):
                raise ValueError(f"header {name!r} is set by tickr and cannot be given")
            if not header_value.isascii() or any((ch < " " and ch != "\t") or ch == "\x7f" for ch in header_value):
                raise ValueError(f"header {name!r} must be printable ASCII (no line breaks or control characters)")
        return value


def sign(secret: str | bytes, timestamp: int | str, body: bytes | str) -> str:
    """The ``X-Tickr-Signature`` value: ``sha256=<hex HMAC-SHA256(secret, b"<timestamp>." + body)>``."""
    key = secret.encode() if isinstance(secret, str) else secret
    data = body.encode() if isinstance(body, str) else body
    digest = hmac.new(key, f"{timestamp}.".encode() + data, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(
    secret: str | bytes,
    timestamp: int | str,
    body: bytes | str,
    signature: str,
    tolerance: float | None = SIGNATURE_TOLERANCE_SECONDS,
    *,
    now: float | None = None,
) -> bool:
    """Check a received request's signature (constant-time) and that its timestamp is fresh.

    ``timestamp`` and ``signature`` are the ``X-Tickr-Timestamp`` and ``X-Tickr-Signature`` header
    values, ``body`` the raw request body. ``tolerance=None`` skips the freshness check.
    """
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    current = time.time() if now is None else now
    if tolerance is not None and abs(current - ts) > tolerance:
        return False
    expected = sign(secret, ts, body)
    return hmac.compare_digest(expected.encode(), signature.strip().encode())


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date), within 0..1 hour."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(int(value))
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - (time.time() if now is None else now)
    return min(max(seconds, 0.0), RETRY_AFTER_CAP_SECONDS)


@functools.lru_cache(maxsize=4)
def _ssl_context(cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    # Keyed on SSL_CERT_FILE/SSL_CERT_DIR so changing them takes effect; loading CAs per request is slow.
    return httpx.create_ssl_context(trust_env=True)


def _encode_body(body: JsonValue) -> tuple[bytes, str | None]:
    if body is None:
        return b"", None
    if isinstance(body, str):
        return body.encode(), "text/plain; charset=utf-8"
    try:
        data = json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError as exc:
        raise Permanent(f"invalid http payload: body: {exc}") from None
    return data.encode(), "application/json"


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _display(url: httpx.URL) -> str:
    """The URL without credentials or query string, for error messages."""
    return f"{url.scheme}://{url.netloc.decode('ascii')}{url.path}"


async def _read_excerpt(response: httpx.Response) -> str:
    buffer = bytearray()
    chunks_iter = cast(AsyncGenerator[bytes, None], response.aiter_bytes())
    async with contextlib.aclosing(chunks_iter) as chunks:
        async for chunk in chunks:
            buffer += chunk
            if len(buffer) >= EXCERPT_BYTES:
                break
    try:
        decoder = codecs.getincrementaldecoder(response.charset_encoding or "utf-8")(errors="replace")
    except LookupError:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    # final=False drops a multi-byte character cut in half at the 1 KiB boundary.
    return str(decoder.decode(bytes(buffer[:EXCERPT_BYTES]), final=False))


async def _send_pinned(
    method: str, url: httpx.URL, ips: list[str], headers: dict[str, str], body: bytes, io_timeout: httpx.Timeout
) -> tuple[httpx.Response, str]:
    """Send to the vetted IPs in turn (never re-resolving the name), keeping Host and TLS SNI of ``url``."""
    extensions: dict[str, Any] = {}
    if url.scheme == "https" and not _is_ip_literal(url.host):
        extensions["sni_hostname"] = url.raw_host.decode("ascii")
    headers = {**headers, "Host": url.netloc.decode("ascii")}
    # An explicit transport: no environment proxies (they would bypass the pinning), a fresh pool per
    # job (a pooled TLS connection is never reused for another host name), no redirects.
    transport = httpx.AsyncHTTPTransport(
        verify=_ssl_context(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    )
    async with httpx.AsyncClient(transport=transport, follow_redirects=False, timeout=io_timeout) as client:
        last_error: httpx.ConnectError | None = None
        for ip in ips:
            request = client.build_request(
                method, url.copy_with(host=ip), headers=headers, content=body, extensions=extensions
            )
            try:
                response = await client.send(request, stream=True)
            except httpx.ConnectError as exc:
                last_error = exc
                continue
            try:
                excerpt = await _read_excerpt(response)
            finally:
                await response.aclose()
            return response, excerpt
    raise Retry(f"{method} {_display(url)}: cannot connect ({', '.join(ips)}): {last_error}")


def _outcome(method: str, url: httpx.URL, response: httpx.Response, excerpt: str, duration_ms: int) -> Any:
    code = response.status_code
    where = f"{method} {_display(url)}"
    if 200 <= code < 300:
        return {"status_code": code, "duration_ms": duration_ms, "response_excerpt": excerpt}
    if 300 <= code < 400:
        location = response.headers.get("location", "(no Location header)")
        raise Permanent(f"{where}: HTTP {code}: redirect to {location} not followed")
    if code in (408, 429) or code >= 500:
        after = parse_retry_after(response.headers.get("retry-after"))
        raise Retry(f"{where}: HTTP {code}: {excerpt[:256]}", after=after)
    raise Permanent(f"{where}: HTTP {code}: {excerpt[:256]}")


async def handler(payload: dict[str, Any]) -> Any:
    """Run an ``http`` job: ``{"method", "url", "headers", "body", "timeout"}``."""
    ctx = current_job()
    job = parse_payload(HttpPayload, payload, "http")
    url = httpx.URL(job.url)
    body, content_type = _encode_body(job.body)

    headers = dict(job.headers)
    if content_type is not None and not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = content_type
    headers["X-Tickr-Job-Id"] = ctx.job_id
    headers["X-Tickr-Attempt"] = str(ctx.attempt)
    secret = ctx.settings.http_signing_secret.get_secret_value() if ctx.settings.http_signing_secret else None
    if secret:
        timestamp = int(time.time())
        headers["X-Tickr-Timestamp"] = str(timestamp)
        headers["X-Tickr-Signature"] = sign(secret, timestamp, body)

    port = url.port or (443 if url.scheme == "https" else 80)
    started = time.perf_counter()
    try:
        async with asyncio.timeout(job.timeout):
            ips = await ssrf.resolve_and_check(url.raw_host.decode("ascii"), port, ctx.settings)
            response, excerpt = await _send_pinned(job.method, url, ips, headers, body, httpx.Timeout(job.timeout))
    except (TimeoutError, httpx.TimeoutException) as exc:
        raise Retry(f"{job.method} {_display(url)}: timed out after {job.timeout:g}s") from exc
    except httpx.TransportError as exc:
        raise Retry(f"{job.method} {_display(url)}: {type(exc).__name__}: {exc}") from exc
    duration_ms = round((time.perf_counter() - started) * 1000)
    return _outcome(job.method, url, response, excerpt, duration_ms)
