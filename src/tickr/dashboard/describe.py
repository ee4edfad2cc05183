"""Cron expressions in words for the schedules page, by ``cron-descriptor`` (tickr's own fixed intervals aside)."""

from __future__ import annotations

from cron_descriptor import CasingTypeEnum, FormatError, MissingFieldError, Options, WrongArgumentError, get_description

from tickr.core.cron import parse_schedule
from tickr.core.errors import ValidationError

UNITS = ((86_400, "d"), (3_600, "h"), (60, "min"), (1, "s"))


def _options() -> Options:
    options = Options()
    options.use_24hour_time_format = True
    options.casing_type = CasingTypeEnum.Sentence
    return options


OPTIONS = _options()


def _duration(seconds: float) -> str:
    rest, parts = int(seconds), []
    for size, unit in UNITS:
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return " ".join(parts) or "0s"


def in_words(expression: str, timezone: str = "UTC") -> str:
    """``"0 9 * * 1-5"`` -> ``"At 09:00, Monday through Friday"``; ``""`` for what is not a schedule."""
    try:
        spec = parse_schedule(expression, timezone)
    except ValidationError:
        return ""
    if spec.interval_seconds is not None:
        return f"Every {_duration(spec.interval_seconds)}"
    # The expression as written reads best ("*/5" stays "every 5 minutes"); an alias (@daily) by its fields.
    text = expression if len(expression.split()) in (5, 6) else " ".join(spec.fields)
    try:
        return str(get_description(text, OPTIONS))
    except (FormatError, MissingFieldError, WrongArgumentError):
        return ""
