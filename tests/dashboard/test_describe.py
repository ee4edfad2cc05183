"""Cron expressions in words (cron-descriptor), seconds field, aliases and tickr's fixed intervals included."""

from __future__ import annotations

import pytest

from tickr.dashboard.describe import in_words


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("0 9 * * 1-5", "At 09:00, Monday through Friday"),
        ("*/5 * * * *", "Every 5 minutes"),
        ("@daily", "At 00:00"),
        ("every: 1h30m", "Every 1h 30min"),
        ("0 0 1 * *", "At 00:00, on day 1 of the month"),
        ("*/10 * * * * *", "Every 10 seconds"),
        ("30 8 1 1 *", "At 08:30, on day 1 of the month, only in January"),
        ("0 12 * * SUN,WED", "At 12:00, only on Sunday and Wednesday"),
        ("15 * * * *", "At 15 minutes past the hour"),
        ("0 0 0 1 * MON", "At 00:00, on day 1 of the month, or on Monday"),  # day of month OR day of week
        (
            "31 10-15 1 * * MON-FRI",
            "At 31 seconds past the minute, minutes 10 through 15 past the hour, at 01:00, Monday through Friday",
        ),
        ("not cron", ""),
    ],
)
def test_in_words(expression: str, words: str) -> None:
    assert in_words(expression) == words
