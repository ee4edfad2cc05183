"""Jinja2 filters of the dashboard: times (UTC in markup, the viewer's zone by script), ages, pretty JSON."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from jinja2 import Environment
from markupsafe import Markup, escape


def iso(ms: int | None) -> str:
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def time_tag(ms: int | None) -> Markup:
    """``<time>`` with the UTC instant as text and title; the page script rewrites the text to local time."""
    if ms is None:
        return Markup("&ndash;")
    text = iso(ms)
    return Markup('<time datetime="{0}" title="{0} UTC">{0}</time>').format(text)


def age(ms: int | float | None) -> str:
    """``90_500`` (milliseconds) -> ``"1m 30s"``."""
    if ms is None:
        return "\u2013"
    seconds = int(ms / 1000)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes}m"


def pretty(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()


def short(text: str | None, n: int = 80) -> str:
    text = text or ""
    return text if len(text) <= n else text[: n - 1] + "…"


def install_filters(env: Environment) -> None:
    env.filters.update(time=time_tag, age=age, pretty=pretty, short=short, e=escape)
