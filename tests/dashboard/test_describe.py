"""Cron expressions in words: the common shapes are described, the rest left to the expression."""

from __future__ import annotations

import pytest

from tickr.dashboard.describe import in_words


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("0 9 * * 1-5", "at 09:00 on weekdays"),
        ("*/5 * * * *", "every 5 minutes"),
        ("@daily", "at 00:00 every day"),
        ("every: 1h30m", "every 1h 30min"),
        ("0 0 1 * *", "at 00:00 on day 1 of every month"),
        ("*/10 * * * * *", "every 10 seconds"),
        ("0 */2 * * *", "every 2 hours at minute 0"),
        ("30 8 1 1 *", "at 08:30 on Jan 1"),
        ("0 12 * * SUN,WED", "at 12:00 on Sunday, Wednesday"),
        ("15 * * * *", "at minute 15 of every hour"),
        ("0 0 0 1 * MON", ""),  # day-of-month OR day-of-week: left to the expression
        ("not cron", ""),
    ],
)
def test_in_words(expression: str, words: str) -> None:
    assert in_words(expression) == words
