"""The ``http`` job type against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from email.utils import formatdate
from typing import Any

import pytest

from tickr.core.errors import Permanent, Retry
from tickr.handlers import BUILTIN_HANDLERS
from tickr.handlers.http import handler, parse_retry_after, sign, verify

from .conftest import SIGNING_SECRET, TestServer, make_settings, run_job

LOOPBACK_OK = make_settings(http_allow_private=True)


async def call(payload: Any, **kwargs: Any) -> Any:
    kwargs.setdefault("settings", LOOPBACK_OK)
    return await run_job(handler, payload, job_type="http", **kwargs)


def test_registered_as_builtin() -> None:
    assert BUILTIN_HANDLERS["http"] is handler


async def test_success_returns_status_duration_and_excerpt(http_server: TestServer) -> None:
    result = await call({"url": http_server.url("/ok")})

    assert set(result) == {"status_code", "duration_ms", "response_excerpt"}
    assert result["status_code"] == 200
    assert result["response_excerpt"] == "hello"
    assert isinstance(result["duration_ms"], int)
    assert 0 <= result["duration_ms"] < 10_000
    assert json.loads(json.dumps(result)) == result
    assert [r.method for r in http_server.requests] == ["GET"]


async def test_json_body_and_custom_headers_arrive(http_server: TestServer) -> None:
    body = {"order": 42, "items": ["a", "b"], "note": "héllo", "ok": True}
    result = await call(
        {"method": "post", "url": http_server.url("/echo?x=1"), "headers": {"X-Custom": "yes"}, "body": body}
    )

    assert result["status_code"] == 200
    (received,) = http_server.requests
    assert received.method == "POST"
    assert received.path == "/echo?x=1"
    assert received.headers["content-type"] == "application/json"
    assert received.headers["x-custom"] == "yes"
    assert json.loads(received.body) == body


async def test_text_body_is_sent_as_text(http_server: TestServer) -> None:
    await call({"method": "PUT", "url": http_server.url("/echo"), "body": "plain text ✓"})

    (received,) = http_server.requests
    assert received.method == "PUT"
    assert received.body == "plain text ✓".encode()
    assert received.headers["content-type"] == "text/plain; charset=utf-8"


async def test_user_content_type_is_kept(http_server: TestServer) -> None:
    await call(
        {
            "method": "PATCH",
            "url": http_server.url("/echo"),
            "headers": {"content-type": "application/merge-patch+json"},
            "body": {"a": None},
        }
    )

    (received,) = http_server.requests
    assert received.headers["content-type"] == "application/merge-patch+json"
    assert json.loads(received.body) == {"a": None}


@pytest.mark.parametrize("method", ["GET", "DELETE", "HEAD", "OPTIONS", "delete"])
async def test_other_methods(http_server: TestServer, method: str) -> None:
    result = await call({"method": method, "url": http_server.url("/ok")})

    assert result["status_code"] == 200
    assert http_server.requests[0].method == method.upper()
    assert result["response_excerpt"] == ("" if method == "HEAD" else "hello")


async def test_job_id_and_attempt_headers(http_server: TestServer) -> None:
    await call({"url": http_server.url("/ok")}, job_id="01J-job-abc", attempt=3)

    headers = http_server.requests[0].headers
    assert headers["x-tickr-job-id"] == "01J-job-abc"
    assert headers["x-tickr-attempt"] == "3"
    assert "x-tickr-signature" not in headers
    assert "x-tickr-timestamp" not in headers


@pytest.mark.parametrize("body", [None, {"amount": 10}, "raw text"])
async def test_signature_verified_by_receiver(http_server: TestServer, body: Any) -> None:
    settings = make_settings(http_allow_private=True, http_signing_secret=SIGNING_SECRET)
    payload: dict[str, Any] = {"method": "POST", "url": http_server.url("/echo")}
    if body is not None:
        payload["body"] = body
    await call(payload, settings=settings)

    (received,) = http_server.requests
    assert received.signature_ok is True
    timestamp = int(received.headers["x-tickr-timestamp"])
    assert abs(time.time() - timestamp) < 60
    assert received.headers["x-tickr-signature"].startswith("sha256=")
    assert not verify("wrong-secret", timestamp, received.body, received.headers["x-tickr-signature"])
    assert not verify(SIGNING_SECRET, timestamp, received.body + b"x", received.headers["x-tickr-signature"])


def test_sign_matches_documented_scheme() -> None:
    expected = hmac.new(b"s3cret", b"1700000000." + b'{"a":1}', hashlib.sha256).hexdigest()
    assert sign("s3cret", 1700000000, b'{"a":1}') == f"sha256={expected}"
    assert sign(b"s3cret", "1700000000", '{"a":1}') == f"sha256={expected}"


def test_verify_checks_freshness_and_format() -> None:
    signature = sign("k", 1000, b"body")
    assert verify("k", 1000, b"body", signature, now=1000)
    assert verify("k", "1000", "body", signature, now=1299)
    assert not verify("k", 1000, b"body", signature, now=1301)
    assert not verify("k", 1000, b"body", signature, now=699)
    assert verify("k", 1000, b"body", signature, tolerance=None, now=10**9)
    assert not verify("k", "not-a-number", b"body", signature, now=1000)
    assert not verify("k", 1000, b"body", "sha256=" + "0" * 64, now=1000)
    assert not verify("k", 1000, b"body", "ünicode", now=1000)


async def test_excerpt_is_first_kib_of_text(http_server: TestServer) -> None:
    result = await call({"url": http_server.url("/big")})

    excerpt = result["response_excerpt"]
    # 1024 bytes = 512 two-byte "é"; no half character at the cut.
    assert excerpt == "é" * 512
    assert len(excerpt.encode()) <= 1024


async def test_500_retries(http_server: TestServer) -> None:
    with pytest.raises(Retry) as info:
        await call({"url": http_server.url("/status/500")})
    assert "500" in str(info.value)
    assert info.value.after is None


async def test_429_honours_retry_after_seconds(http_server: TestServer) -> None:
    with pytest.raises(Retry) as info:
        await call({"url": http_server.url("/status/429?retry_after=7")})
    assert info.value.after == 7
    assert "429" in str(info.value)


async def test_503_honours_retry_after_http_date(http_server: TestServer) -> None:
    when = formatdate(time.time() + 120, usegmt=True)
    with pytest.raises(Retry) as info:
        await call({"url": http_server.url(f"/status/503?retry_after={when.replace(' ', '%20')}")})
    assert info.value.after is not None
    assert 100 <= info.value.after <= 121


async def test_retry_after_is_capped_at_an_hour(http_server: TestServer) -> None:
    with pytest.raises(Retry) as info:
        await call({"url": http_server.url("/status/503?retry_after=86400")})
    assert info.value.after == 3600


async def test_408_retries(http_server: TestServer) -> None:
    with pytest.raises(Retry):
        await call({"url": http_server.url("/status/408")})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("0", 0.0),
        ("7", 7.0),
        ("99999", 3600.0),
        ("soon", None),
        ("-5", None),
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now=1445412480.0) == 30.0


async def test_404_is_permanent_with_status_and_excerpt(http_server: TestServer) -> None:
    with pytest.raises(Permanent) as info:
        await call({"url": http_server.url("/status/404")})
    message = str(info.value)
    assert "404" in message
    assert "status body /status/404" in message


async def test_redirect_is_not_followed(http_server: TestServer) -> None:
    with pytest.raises(Permanent) as info:
        await call({"url": http_server.url("/status/302?location=http://169.254.169.254/latest/meta-data/")})
    assert "redirect to http://169.254.169.254/latest/meta-data/ not followed" in str(info.value)
    assert len(http_server.requests) == 1


async def test_timeout_retries(http_server: TestServer) -> None:
    started = time.monotonic()
    with pytest.raises(Retry) as info:
        await call({"url": http_server.url("/slow?delay=3"), "timeout": 0.3})
    assert "timed out" in str(info.value)
    assert time.monotonic() - started < 2.5


async def test_connection_refused_retries(closed_port: int) -> None:
    with pytest.raises(Retry) as info:
        await call({"url": f"http://127.0.0.1:{closed_port}/"})
    assert "cannot connect" in str(info.value)


# Refused payloads and the field each refusal names (tests/handlers/test_submit.py: refused at enqueue too).
BAD_HTTP: list[tuple[dict[str, Any], str]] = [
    ({}, "url"),
    ({"method": "GET"}, "url"),
    ({"url": "http://example.com/", "method": "FETCH"}, "method"),
    ({"url": "ftp://example.com/file"}, "url"),
    ({"url": "file:///etc/passwd"}, "url"),
    ({"url": "not a url"}, "url"),
    ({"url": "http://example.com:99999/"}, "url"),
    ({"url": "http://example.com/", "extra": 1}, "extra"),
    ({"url": "http://example.com/", "headers": {"X-A": 1}}, "headers"),
    ({"url": "http://example.com/", "headers": {"Bad Name": "x"}}, "headers"),
    ({"url": "http://example.com/", "headers": {"X-A": "a\r\nInjected: 1"}}, "headers"),
    ({"url": "http://example.com/", "headers": {"Host": "evil"}}, "headers"),
    ({"url": "http://example.com/", "headers": {"X-A": "héllo"}}, "headers"),
    ({"url": "http://example.com/", "headers": {"X-Tickr-Job-Id": "spoof"}}, "headers"),
    ({"url": "http://example.com/", "timeout": 0}, "timeout"),
    ({"url": "http://example.com/", "timeout": 3601}, "timeout"),
    ({"url": "http://example.com/", "timeout": "fast"}, "timeout"),
    ({"url": "http://example.com/", "timeout": True}, "timeout"),
    ({"url": 42}, "url"),
]


@pytest.mark.parametrize(("payload", "field"), BAD_HTTP)
async def test_bad_payload_is_permanent_naming_the_field(payload: dict[str, Any], field: str) -> None:
    with pytest.raises(Permanent) as info:
        await call(payload)
    assert str(info.value).startswith("invalid http payload: ")
    assert f" {field}:" in str(info.value) or f" {field}." in str(info.value)


async def test_non_object_payload_is_permanent() -> None:
    with pytest.raises(Permanent, match="JSON object"):
        await call(["http://example.com/"])
