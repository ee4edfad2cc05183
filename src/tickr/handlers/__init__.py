"""tickr's built-in job types, by name.

http          one outgoing HTTP request (SSRF-guarded, optionally HMAC-signed)   tickr.handlers.http
noop          does nothing, returns None                                          tickr.handlers.demo
sleep         sleeps ``ms`` milliseconds (alias: sleeper)
flaky         fails on the first ``fail_times`` attempts, then succeeds
fail          always fails with ``message`` (alias: always_fail)
email         sends (or, without TICKR_SMTP_URL, logs) an email
report        writes a CSV (generated rows, or the rows given) under <data_dir>/reports/

``BUILTIN_PAYLOADS`` names each type's payload model: the app checks payloads against it at enqueue, the
handler parses with it again when it runs. The fields are documented in docs/job-types.md.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel

from tickr.handlers import demo, http

Handler = Callable[[dict[str, Any]], Awaitable[Any]]

BUILTIN_HANDLERS: dict[str, Handler] = {
    "http": http.handler,
    "noop": demo.noop,
    "sleep": demo.sleep,
    "sleeper": demo.sleep,
    "flaky": demo.flaky,
    "fail": demo.fail,
    "always_fail": demo.fail,
    "email": demo.email,
    "report": demo.report,
}

BUILTIN_PAYLOADS: dict[str, type[BaseModel]] = {
    "http": http.HttpPayload,
    "noop": demo.NoopPayload,
    "sleep": demo.SleepPayload,
    "sleeper": demo.SleepPayload,
    "flaky": demo.FlakyPayload,
    "fail": demo.FailPayload,
    "always_fail": demo.FailPayload,
    "email": demo.EmailPayload,
    "report": demo.ReportPayload,
}

__all__ = ["BUILTIN_HANDLERS", "BUILTIN_PAYLOADS", "Handler"]
