"""tickr's built-in job types, by name.

http          one outgoing HTTP request (SSRF-guarded, optionally HMAC-signed)   tickr.handlers.http
noop          does nothing, returns None                                          tickr.handlers.demo
sleep         sleeps ``ms`` milliseconds (alias: sleeper)
flaky         fails on the first ``fail_times`` attempts, then succeeds
fail          always fails with ``message`` (alias: always_fail)
email         sends (or, without TICKR_SMTP_URL, logs) an email
report        writes a generated CSV under <data_dir>/reports/
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

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

__all__ = ["BUILTIN_HANDLERS", "Handler"]
