"""The demo job types: noop, sleep, flaky, fail, email (logged and sent through a real SMTP server), report."""

from __future__ import annotations

import csv
import logging
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tickr.core.errors import ConfigError, Permanent, Retry
from tickr.handlers import BUILTIN_HANDLERS, BUILTIN_PAYLOADS, demo

from .conftest import make_settings, run_job


def test_builtin_names_and_aliases() -> None:
    assert set(BUILTIN_HANDLERS) == {
        "http",
        "noop",
        "sleep",
        "sleeper",
        "flaky",
        "fail",
        "always_fail",
        "email",
        "report",
    }
    assert BUILTIN_HANDLERS["sleeper"] is BUILTIN_HANDLERS["sleep"] is demo.sleep
    assert BUILTIN_HANDLERS["always_fail"] is BUILTIN_HANDLERS["fail"] is demo.fail


def test_every_builtin_type_has_its_payload_model() -> None:
    assert set(BUILTIN_PAYLOADS) == set(BUILTIN_HANDLERS)
    assert BUILTIN_PAYLOADS["sleeper"] is BUILTIN_PAYLOADS["sleep"] is demo.SleepPayload
    assert BUILTIN_PAYLOADS["always_fail"] is BUILTIN_PAYLOADS["fail"] is demo.FailPayload


def assert_permanent_names(exc: pytest.ExceptionInfo[Permanent], job_type: str, field_name: str) -> None:
    message = str(exc.value)
    assert message.startswith(f"invalid {job_type} payload: ")
    assert field_name in message


# Payloads each type refuses, with the field the refusal names: the handler at run time refuses them here, and
# tests/handlers/test_submit.py checks that enqueueing refuses them too.

EMAIL = {"to": "alice@example.com", "subject": "Hello", "body": "Line one\nLine two"}

BAD_SLEEP: list[tuple[dict[str, Any], str]] = [
    ({}, "ms or sleep_ms"),
    ({"ms": 1, "sleep_ms": 1}, "ms or sleep_ms"),
    ({"ms": -1}, "ms"),
    ({"ms": 3_600_001}, "ms"),
    ({"ms": "10"}, "ms"),
    ({"ms": 1.5}, "ms"),
    ({"ms": True}, "ms"),
    ({"sleep_ms": 5, "seconds": 1}, "seconds"),
]

BAD_FLAKY: list[tuple[dict[str, Any], str]] = [
    ({"fail_times": -1}, "fail_times"),
    ({"fail_times": "2"}, "fail_times"),
    ({"message": 3}, "message"),
    ({"x": 1}, "x"),
]

BAD_FAIL: list[tuple[dict[str, Any], str]] = [({"message": 5}, "message"), ({"reason": "x"}, "reason")]

BAD_EMAIL: list[tuple[dict[str, Any], str]] = [
    ({"subject": "s"}, "to"),
    ({**EMAIL, "to": "no-at-sign.example.com"}, "to"),
    ({**EMAIL, "to": "two@@example.com"}, "to"),
    ({**EMAIL, "to": "a@b@example.com"}, "to"),
    ({**EMAIL, "to": "alice@localhost"}, "to"),
    ({**EMAIL, "to": "alice@example."}, "to"),
    ({**EMAIL, "to": "alice@example.com, bob@example.com"}, "to"),
    ({**EMAIL, "to": "@example.com"}, "to"),
    ({"to": "alice@example.com", "body": "b"}, "subject"),
    ({**EMAIL, "subject": "one\r\nBcc: x@example.com"}, "subject"),
    ({**EMAIL, "body": ["not", "text"]}, "body"),
    ({**EMAIL, "cc": "bob@example.com"}, "cc"),
]

BAD_REPORT: list[tuple[dict[str, Any], str]] = [
    ({}, "name"),
    ({"name": ""}, "name"),
    ({"name": "../escape"}, "name"),
    ({"name": "a b"}, "name"),
    ({"name": "x" * 65}, "name"),
    ({"name": "ok", "rows": 0}, "rows"),
    ({"name": "ok", "rows": 1_000_001}, "rows"),
    ({"name": "ok", "rows": "5"}, "rows"),
    ({"name": "ok", "rows": True}, "rows"),
    ({"name": "ok", "rows": 2.0}, "rows"),
    ({"name": "ok", "rows": []}, "rows"),
    ({"name": "ok", "rows": [1, 2]}, "rows"),
    ({"name": "ok", "rows": [{"a": 1}, "b"]}, "rows"),
    ({"name": "ok", "format": "xlsx"}, "format"),
]


# --- noop ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("payload", [{}, {"anything": [1, 2, 3]}])
async def test_noop_returns_none(payload: dict[str, Any]) -> None:
    assert await run_job(demo.noop, payload) is None


async def test_noop_rejects_non_object() -> None:
    with pytest.raises(Permanent, match="JSON object"):
        await run_job(demo.noop, "nope")


# --- sleep --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["ms", "sleep_ms"])
async def test_sleep_sleeps(key: str) -> None:
    started = time.monotonic()
    assert await run_job(demo.sleep, {key: 50}) == {"slept_ms": 50}
    assert time.monotonic() - started >= 0.045


async def test_sleep_zero() -> None:
    assert await run_job(demo.sleep, {"ms": 0}) == {"slept_ms": 0}


@pytest.mark.parametrize(("payload", "field_name"), BAD_SLEEP)
async def test_sleep_bad_payload(payload: dict[str, Any], field_name: str) -> None:
    with pytest.raises(Permanent) as info:
        await run_job(demo.sleep, payload)
    assert_permanent_names(info, "sleep", field_name)


# --- flaky --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("attempt", [1, 2])
async def test_flaky_fails_while_attempt_within_fail_times(attempt: int) -> None:
    with pytest.raises(RuntimeError, match=f"attempt {attempt} of 2") as info:
        await run_job(demo.flaky, {"fail_times": 2}, attempt=attempt)
    assert type(info.value) is RuntimeError


@pytest.mark.parametrize("attempt", [3, 4])
async def test_flaky_succeeds_after_fail_times(attempt: int) -> None:
    assert await run_job(demo.flaky, {"fail_times": 2}, attempt=attempt) == {"attempts": attempt}


async def test_flaky_defaults_to_failing_once() -> None:
    with pytest.raises(RuntimeError):
        await run_job(demo.flaky, {}, attempt=1)
    assert await run_job(demo.flaky, {}, attempt=2) == {"attempts": 2}


async def test_flaky_zero_fail_times_and_custom_message() -> None:
    assert await run_job(demo.flaky, {"fail_times": 0}, attempt=1) == {"attempts": 1}
    with pytest.raises(RuntimeError, match=r"^boom$"):
        await run_job(demo.flaky, {"fail_times": 1, "message": "boom"}, attempt=1)


@pytest.mark.parametrize(("payload", "field_name"), BAD_FLAKY)
async def test_flaky_bad_payload(payload: dict[str, Any], field_name: str) -> None:
    with pytest.raises(Permanent) as info:
        await run_job(demo.flaky, payload)
    assert_permanent_names(info, "flaky", field_name)


# --- fail ---------------------------------------------------------------------------------------------------


async def test_fail_always_raises_runtime_error() -> None:
    with pytest.raises(RuntimeError, match=r"^fail job always fails$"):
        await run_job(demo.fail, {})
    with pytest.raises(RuntimeError, match=r"^custom reason$"):
        await run_job(demo.fail, {"message": "custom reason"}, attempt=9)


@pytest.mark.parametrize(("payload", "field_name"), BAD_FAIL)
async def test_fail_bad_payload(payload: dict[str, Any], field_name: str) -> None:
    with pytest.raises(Permanent) as info:
        await run_job(demo.fail, payload)
    assert_permanent_names(info, "fail", field_name)


# --- email --------------------------------------------------------------------------------------------------


async def test_email_without_smtp_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="tickr.handlers.email"):
        result = await run_job(demo.email, EMAIL)

    assert result == {"to": "alice@example.com", "sent": False}
    (record,) = [r for r in caplog.records if r.name == "tickr.handlers.email"]
    assert record.levelno == logging.INFO
    text = record.getMessage()
    assert "alice@example.com" in text
    assert "Hello" in text
    assert "Line two" in text


@pytest.mark.parametrize(("payload", "field_name"), BAD_EMAIL)
async def test_email_bad_payload(payload: dict[str, Any], field_name: str) -> None:
    with pytest.raises(Permanent) as info:
        await run_job(demo.email, payload)
    assert_permanent_names(info, "email", field_name)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass
class SmtpSink:
    """An aiosmtpd handler that keeps accepted messages and can refuse recipients."""

    port: int = 0
    messages: list[Any] = field(default_factory=list)
    rcpt_reply: str | None = None

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:  # noqa: N802
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(envelope)
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    controller_mod = pytest.importorskip("aiosmtpd.controller")
    sink = SmtpSink(port=free_port())
    controller = controller_mod.Controller(sink, hostname="127.0.0.1", port=sink.port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


async def test_email_sent_through_real_smtp_server(smtp_sink: SmtpSink) -> None:
    settings = make_settings(smtp_url=f"smtp://127.0.0.1:{smtp_sink.port}?from=noreply@tickr.example")

    result = await run_job(demo.email, EMAIL, settings=settings, job_id="job-mail-1")

    assert result == {"to": "alice@example.com", "sent": True}
    (envelope,) = smtp_sink.messages
    assert envelope.mail_from == "noreply@tickr.example"
    assert envelope.rcpt_tos == ["alice@example.com"]
    content = envelope.content.decode()
    assert "Subject: Hello" in content
    assert "To: alice@example.com" in content
    assert "X-Tickr-Job-Id: job-mail-1" in content
    assert "Line two" in content


async def test_email_recipient_rejected_permanently(smtp_sink: SmtpSink) -> None:
    smtp_sink.rcpt_reply = "550 5.1.1 no such user"
    settings = make_settings(smtp_url=f"smtp://127.0.0.1:{smtp_sink.port}")
    with pytest.raises(Permanent, match="550"):
        await run_job(demo.email, EMAIL, settings=settings)
    assert smtp_sink.messages == []


async def test_email_recipient_deferred_retries(smtp_sink: SmtpSink) -> None:
    smtp_sink.rcpt_reply = "451 4.3.0 try again later"
    settings = make_settings(smtp_url=f"smtp://127.0.0.1:{smtp_sink.port}")
    with pytest.raises(Retry, match="451"):
        await run_job(demo.email, EMAIL, settings=settings)


async def test_email_smtp_connect_error_retries() -> None:
    settings = make_settings(smtp_url=f"smtp://127.0.0.1:{free_port()}")
    with pytest.raises(Retry, match=r"SMTP 127\.0\.0\.1"):
        await run_job(demo.email, EMAIL, settings=settings)


def test_parse_smtp_url() -> None:
    target = demo.parse_smtp_url("smtp://user%40corp:p%3Ass@mail.example.com:587?starttls=true&from=bot@corp.example")
    assert target == demo.SmtpTarget(
        hostname="mail.example.com",
        port=587,
        username="user@corp",
        password="p:ss",
        use_tls=False,
        start_tls=True,
        sender="bot@corp.example",
    )
    plain = demo.parse_smtp_url("smtp://mail.example.com")
    assert (plain.port, plain.username, plain.use_tls, plain.start_tls, plain.sender) == (
        25,
        None,
        False,
        None,
        "tickr@localhost",
    )
    assert demo.parse_smtp_url("smtp://h?starttls=false").start_tls is False
    tls = demo.parse_smtp_url("smtps://u:p@mail.example.com")
    assert (tls.port, tls.use_tls, tls.start_tls) == (465, True, False)


@pytest.mark.parametrize("url", ["http://mail.example.com", "smtp://", "smtp://h:notaport"])
def test_parse_smtp_url_rejects_bad_urls(url: str) -> None:
    with pytest.raises(ConfigError):
        demo.parse_smtp_url(url)


# --- report -------------------------------------------------------------------------------------------------


async def test_report_writes_csv(tmp_path: Path) -> None:
    settings = make_settings(data_dir=tmp_path)

    result = await run_job(demo.report, {"name": "daily-sales_1", "rows": 250}, settings=settings, job_id="job-9")

    path = tmp_path / "reports" / "daily-sales_1-job-9.csv"
    assert result == {"path": str(path.absolute()), "rows": 250}
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["id", "name", "value", "created_at"]
    assert len(rows) == 251
    assert rows[1][:2] == ["1", "daily-sales_1-1"]
    assert rows[-1][0] == "250"
    assert all(0 <= float(row[2]) <= 1000 for row in rows[1:])
    assert list(path.parent.iterdir()) == [path]  # the temporary file was renamed away


async def test_report_default_rows_and_unsafe_job_id(tmp_path: Path) -> None:
    settings = make_settings(data_dir=tmp_path)
    result = await run_job(demo.report, {"name": "r"}, settings=settings, job_id="../../etc/x")
    path = Path(result["path"])
    assert path.parent == (tmp_path / "reports").absolute()
    assert result["rows"] == 100
    assert len(path.read_text().splitlines()) == 101


async def test_report_from_rows_given_writes_their_keys_as_columns(tmp_path: Path) -> None:
    rows = [
        {"region": "north", "total": 12.5, "closed": True},
        {"region": "south, east", "items": [1, 2], "closed": False, "note": None},
        {"total": 3, "meta": {"k": "v"}},
    ]
    settings = make_settings(data_dir=tmp_path)
    result = await run_job(demo.report, {"name": "sales", "rows": rows}, settings=settings, job_id="job-7")

    path = tmp_path / "reports" / "sales-job-7.csv"
    assert result == {"path": str(path.absolute()), "rows": 3}
    with path.open(newline="") as fh:
        lines = list(csv.reader(fh))
    assert lines == [
        ["region", "total", "closed", "items", "note", "meta"],  # every key, in the order first seen
        ["north", "12.5", "true", "", "", ""],
        ["south, east", "", "false", "[1,2]", "", ""],  # nested values as compact JSON, null as empty
        ["", "3", "", "", "", '{"k":"v"}'],
    ]
    assert list(path.parent.iterdir()) == [path]


@pytest.mark.parametrize(("payload", "field_name"), BAD_REPORT)
async def test_report_bad_payload(tmp_path: Path, payload: dict[str, Any], field_name: str) -> None:
    with pytest.raises(Permanent) as info:
        await run_job(demo.report, payload, settings=make_settings(data_dir=tmp_path))
    assert_permanent_names(info, "report", field_name)
    assert not (tmp_path / "reports").exists()
