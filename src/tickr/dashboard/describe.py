"""Cron expressions in words for the schedules page (common shapes; anything else shows as the expression only)."""

from __future__ import annotations

from tickr.core.cron import parse_schedule
from tickr.core.errors import ValidationError

DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
MONTHS = ("", "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
UNITS = ((86_400, "d"), (3_600, "h"), (60, "min"), (1, "s"))


def _step(field: str, size: int) -> int | None:
    """``"0,15,30,45"`` (minutes, size 60) -> 15: an even step from 0 covering the field; else None."""
    try:
        values = [int(v) for v in field.split(",")]
    except ValueError:
        return None
    if len(values) < 2 or values[0] != 0:
        return None
    step = values[1] - values[0]
    return step if values == list(range(0, size, step)) else None


def _duration(seconds: float) -> str:
    rest, parts = int(seconds), []
    for size, unit in UNITS:
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return " ".join(parts) or "0s"


def _time(sec: str, minute: str, hour: str) -> str | None:
    if sec.isdigit() and minute.isdigit() and hour.isdigit():
        clock = f"{int(hour):02d}:{int(minute):02d}" + (f":{int(sec):02d}" if sec != "0" else "")
        return f"at {clock}"
    if sec == "0" and hour == "*":
        if minute == "*":
            return "every minute"
        if minute.isdigit():
            return f"at minute {minute} of every hour"
        step = _step(minute, 60)
        return f"every {step} minutes" if step else None
    if sec == "0" and minute.isdigit():
        step = _step(hour, 24)
        if step:
            return f"every {step} hours at minute {minute}"
        if "-" in hour and hour.replace("-", "").isdigit():
            return f"at minute {minute} of hours {hour}"
    if minute == "*" and hour == "*":
        step = _step(sec, 60) if sec != "*" else 1
        return f"every {step} seconds" if step and step > 1 else "every second" if step else None
    return None


def _days(dom: str, month: str, dow: str) -> str | None:
    if dom == "*" and month == "*":
        if dow == "*":
            return "every day"
        if dow == "1-5":
            return "on weekdays"
        if dow in ("0,6", "6,0"):
            return "at weekends"
        if all(d.isdigit() and int(d) < 7 for d in dow.split(",")):
            return "on " + ", ".join(DAYS[int(d)] for d in dow.split(","))
        return None
    if dow == "*" and dom.isdigit():
        if month == "*":
            return f"on day {dom} of every month"
        if month.isdigit():
            return f"on {MONTHS[int(month)]} {dom}"
    return None


def in_words(expression: str, timezone: str = "UTC") -> str:
    """``"0 9 * * 1-5"`` -> ``"at 09:00 on weekdays"``; ``""`` for a shape this does not describe."""
    try:
        spec = parse_schedule(expression, timezone)
    except ValidationError:
        return ""
    if spec.interval_seconds is not None:
        return f"every {_duration(spec.interval_seconds)}"
    sec, minute, hour, dom, month, dow = spec.fields
    when, days = _time(sec, minute, hour), _days(dom, month, dow)
    if not (when and days):
        return ""
    repeating = when.startswith("every") or when.endswith("of every hour")
    return when if repeating and days == "every day" else f"{when} {days}"
