"""Tests for tickr.core.cron: syntax, validation messages, DST rules, and property checks against oracles."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tickr.core.cron import CronSpec, fires_between_ms, from_ms, next_fire_ms, parse_schedule, to_ms
from tickr.core.errors import ValidationError


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


# --------------------------------------------------------------------------- syntax


def test_six_field_example_seconds_first() -> None:
    spec = parse_schedule("31 10-15 1 * * MON-FRI")
    assert spec.fields == ("31", "10-15", "1", "*", "*", "1-5")
    # 2024-01-01 is a Monday: 01:10:31 .. 01:15:31 every weekday
    assert spec.next_fires(utc(2024, 1, 1), 7) == [utc(2024, 1, 1, 1, m, 31) for m in range(10, 16)] + [
        utc(2024, 1, 2, 1, 10, 31)
    ]
    # Friday 2024-01-05 after the last fire → Monday 2024-01-08
    assert spec.next_fire(utc(2024, 1, 5, 1, 15, 31)) == utc(2024, 1, 8, 1, 10, 31)


def test_five_fields_fire_at_second_zero() -> None:
    spec = parse_schedule("*/5 * * * *")
    assert spec.fields[0] == "0"
    assert spec.next_fires(utc(2024, 6, 1, 10, 2, 30), 3) == [
        utc(2024, 6, 1, 10, 5),
        utc(2024, 6, 1, 10, 10),
        utc(2024, 6, 1, 10, 15),
    ]


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("0 0-10/5,30 9 * * *", utc(2024, 1, 1), [utc(2024, 1, 1, 9, m) for m in (0, 5, 10, 30)]),
        ("0 5/20 * * * *", utc(2024, 1, 1), [utc(2024, 1, 1, 0, m) for m in (5, 25, 45)]),
        ("0 0 12 * jan,Jul sun", utc(2024, 1, 1), [utc(2024, 1, 7, 12), utc(2024, 1, 14, 12)]),
        ("0 0 0 1 FEB-APR/2 *", utc(2024, 1, 1), [utc(2024, 2, 1), utc(2024, 4, 1), utc(2025, 2, 1)]),
        ("0 0 * * 7", utc(2024, 1, 1), [utc(2024, 1, 7), utc(2024, 1, 14)]),  # 7 = Sunday
        ("0 0 * * 5-7", utc(2024, 1, 1), [utc(2024, 1, 5), utc(2024, 1, 6), utc(2024, 1, 7)]),
        ("0 0 * * MON-FRI/2", utc(2024, 1, 1, 1), [utc(2024, 1, 3), utc(2024, 1, 5), utc(2024, 1, 8)]),
        # day-of-month AND day-of-week restricted: OR semantics (the 13th, and every Friday)
        ("0 0 13 * FRI", utc(2024, 1, 1), [utc(2024, 1, 5), utc(2024, 1, 12), utc(2024, 1, 13), utc(2024, 1, 19)]),
        ("0 0 29 2 *", utc(2024, 3, 1), [utc(2028, 2, 29)]),
        # croniter 7 reads an equal range (5-5, MON-MON) as the whole field; tickr means the one value
        ("0 5-5 * * * *", utc(2024, 1, 1), [utc(2024, 1, 1, 0, 5), utc(2024, 1, 1, 1, 5)]),
        ("0 0 * * MON-MON", utc(2024, 1, 2), [utc(2024, 1, 8), utc(2024, 1, 15)]),
    ],
)
def test_names_ranges_steps_lists(expression: str, after: datetime, expected: list[datetime]) -> None:
    assert parse_schedule(expression).next_fires(after, len(expected)) == expected


@pytest.mark.parametrize(
    ("macro", "expected"),
    [
        ("@hourly", utc(2024, 5, 15, 11)),
        ("@daily", utc(2024, 5, 16)),
        ("@midnight", utc(2024, 5, 16)),
        ("@weekly", utc(2024, 5, 19)),  # Sunday
        ("@monthly", utc(2024, 6, 1)),
        ("@yearly", utc(2025, 1, 1)),
        ("@ANNUALLY", utc(2025, 1, 1)),
    ],
)
def test_macros(macro: str, expected: datetime) -> None:
    spec = parse_schedule(macro)
    assert spec.expression == macro.lower()
    assert spec.next_fire(utc(2024, 5, 15, 10, 30)) == expected


@pytest.mark.parametrize(
    ("text", "seconds", "normalised"),
    [
        ("every: 30s", 30, "every: 30s"),
        ("every 5m", 300, "every: 5m"),
        ("every: 1h30m", 5400, "every: 1h30m"),
        ("EVERY: 2d", 172800, "every: 2d"),
        ("every:  1d 2h 3m 4s", 93784, "every: 1d2h3m4s"),
    ],
)
def test_interval_syntax(text: str, seconds: int, normalised: str) -> None:
    spec = parse_schedule(text)
    assert spec.is_interval
    assert spec.interval_seconds == seconds
    assert spec.expression == normalised


def test_interval_is_anchored() -> None:
    anchor = utc(2024, 1, 1, 0, 0, 7)
    spec = parse_schedule("every: 1h30m", anchor=anchor)
    assert spec.next_fire(utc(2023, 12, 1)) == anchor  # before the anchor: the anchor itself
    assert spec.next_fire(anchor) == utc(2024, 1, 1, 1, 30, 7)
    assert spec.next_fires(utc(2024, 1, 1, 2), 2) == [utc(2024, 1, 1, 3, 0, 7), utc(2024, 1, 1, 4, 30, 7)]
    # default anchor is the Unix epoch: on the hour
    assert parse_schedule("every: 1h").next_fire(utc(2024, 1, 1, 10, 0, 1)) == utc(2024, 1, 1, 11)


def test_interval_ignores_dst() -> None:
    spec = parse_schedule("every: 1h", "Europe/Berlin")
    fires = spec.next_fires(utc(2024, 3, 30, 23), 4)
    assert [b - a for a, b in pairwise(fires)] == [timedelta(hours=1)] * 3


def test_next_fire_is_strict_and_accepts_any_zone() -> None:
    spec = parse_schedule("0 12 * * *")
    assert spec.next_fire(utc(2024, 1, 1, 12)) == utc(2024, 1, 2, 12)
    assert spec.next_fire(utc(2024, 1, 1, 11, 59, 59, 999999)) == utc(2024, 1, 1, 12)
    paris = datetime(2024, 1, 1, 12, 30, tzinfo=ZoneInfo("Europe/Paris"))  # 11:30 UTC
    assert spec.next_fire(paris) == utc(2024, 1, 1, 12)
    assert spec.next_fire(paris).tzinfo is UTC
    with pytest.raises(ValueError, match="timezone-aware"):
        spec.next_fire(datetime(2024, 1, 1))


def test_fires_between_bounds_and_limit() -> None:
    spec = parse_schedule("0 * * * *")
    assert spec.fires_between(utc(2024, 1, 1, 1), utc(2024, 1, 1, 4), 10) == [
        utc(2024, 1, 1, 2),
        utc(2024, 1, 1, 3),
        utc(2024, 1, 1, 4),
    ]
    assert spec.fires_between(utc(2024, 1, 1, 1), utc(2024, 1, 1, 4), 2) == [utc(2024, 1, 1, 2), utc(2024, 1, 1, 3)]
    assert spec.fires_between(utc(2024, 1, 1, 1), utc(2024, 1, 1, 1, 59), 10) == []
    assert spec.fires_between(utc(2024, 1, 1, 1), utc(2024, 1, 1, 4), 0) == []


def test_millisecond_helpers() -> None:
    spec = parse_schedule("*/10 * * * * *")
    start = to_ms(utc(2024, 1, 1))
    assert from_ms(start) == utc(2024, 1, 1)
    assert next_fire_ms(spec, start) == start + 10_000
    assert next_fire_ms(spec, start + 9_999) == start + 10_000
    assert fires_between_ms(spec, start, start + 30_000, 10) == [start + 10_000, start + 20_000, start + 30_000]
    interval = parse_schedule("every: 30s", anchor=utc(2024, 1, 1, 0, 0, 0, 123456))
    assert next_fire_ms(interval, start) == start + 123  # anchor floored to whole ms
    assert next_fire_ms(interval, start + 123) == start + 30_123


def test_expression_is_normalised() -> None:
    assert parse_schedule("  0   12 *  * MON ").expression == "0 12 * * MON"
    assert parse_schedule("0 12 * * *", "Asia/Kolkata").timezone == "Asia/Kolkata"
    assert isinstance(parse_schedule("@daily"), CronSpec)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("61 * * * * *", "invalid cron expression '61 * * * * *': second field '61' is out of range 0-59"),
        ("* 60 * * * *", "minute field '60' is out of range 0-59"),
        ("0 24 * * *", "hour field '24' is out of range 0-23"),
        ("0 0 0 * *", "day-of-month field '0' is out of range 1-31"),
        ("0 0 1 13 *", "month field '13' is out of range 1-12 or JAN-DEC"),
        ("0 0 * * 8", "day-of-week field '8' is out of range 0-7 or SUN-SAT"),
        ("1,61 * * * * *", "second field '1,61': '61' is out of range 0-59"),
        ("0 0 1 JANUARY *", "month field 'JANUARY' is not valid: expected 1-12 or JAN-DEC"),
        ("0 0 * * MON-FUN", "day-of-week field 'MON-FUN': 'FUN' is not valid"),
        ("*/0 * * * *", "minute field '*/0': step '0' must be a whole number of at least 1"),
        ("0 0-10/x * * *", "hour field '0-10/x': step 'x' must be"),
        ("0 5-1 * * *", "hour field '5-1': range '5-1' is reversed"),
        ("1,,2 * * * *", "minute field '1,,2' has an empty list item"),
        ("0 0 L * *", "day-of-month field 'L' is not valid"),
        ("0 0 30 2 *", "day-of-month '30' never occurs in month '2'"),
        ("* * * *", "found 4 fields; expected 5 fields (minute hour day-of-month month day-of-week), 6 fields"),
        ("0 0 0 1 1 * 2030", "found 7 fields"),
        ("@fortnightly", "unknown macro '@fortnightly'; accepted: @hourly, @daily"),
        ("every: 0s", "invalid interval 'every: 0s': the interval must be at least 1s"),
        ("every: 5x", "invalid interval 'every: 5x': expected a duration such as 30s"),
        ("every: 1m1h", "invalid interval 'every: 1m1h'"),
        ("every:", "invalid interval 'every:'"),
        ("", "schedule expression is empty"),
    ],
)
def test_invalid_expressions_name_field_and_value(expression: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_schedule(expression)
    assert message in str(info.value)
    assert set(info.value.errors) == {"cron"}
    assert info.value.errors["cron"] == str(info.value)


def test_out_of_range_message_is_exact() -> None:
    with pytest.raises(ValidationError) as info:
        parse_schedule("61 * * * * *")
    assert info.value.errors == {
        "cron": "invalid cron expression '61 * * * * *': second field '61' is out of range 0-59"
    }


@pytest.mark.parametrize("zone", ["Mars/Base", "", "Europe", "../etc/passwd", "utc"])
def test_unknown_timezone(zone: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_schedule("* * * * *", zone)
    assert info.value.errors == {"timezone": f"unknown timezone '{zone}'"}


def test_expression_and_timezone_errors_together() -> None:
    with pytest.raises(ValidationError) as info:
        parse_schedule("61 * * * * *", "Mars/Base")
    assert set(info.value.errors) == {"cron", "timezone"}


def test_naive_anchor_rejected() -> None:
    with pytest.raises(ValidationError) as info:
        parse_schedule("every: 1m", anchor=datetime(2024, 1, 1))
    assert info.value.errors == {"anchor": "anchor must be a timezone-aware datetime"}


# --------------------------------------------------------------------------- DST

BERLIN, NEW_YORK = "Europe/Berlin", "America/New_York"
QUARTER = ("*/15 * * * *", "0 */15 * * * *")


@pytest.mark.parametrize("expression", ["30 2 * * *", "0 30 2 * * *"])
@pytest.mark.parametrize(
    ("zone", "start", "end", "expected"),
    [
        # Berlin spring forward 2024-03-31 02:00 CET → 03:00 CEST: 02:30 fires at 03:00 CEST = 01:00 UTC
        (
            BERLIN,
            utc(2024, 3, 29),
            utc(2024, 4, 2),
            [utc(2024, 3, 29, 1, 30), utc(2024, 3, 30, 1, 30), utc(2024, 3, 31, 1), utc(2024, 4, 1, 0, 30)],
        ),
        # Berlin fall back 2024-10-27 03:00 CEST → 02:00 CET: 02:30 happens twice, fires at the first
        (
            BERLIN,
            utc(2024, 10, 25, 23),
            utc(2024, 10, 28, 23),
            [utc(2024, 10, 26, 0, 30), utc(2024, 10, 27, 0, 30), utc(2024, 10, 28, 1, 30)],
        ),
        # New York spring forward 2024-03-10 02:00 EST → 03:00 EDT: 02:30 fires at 03:00 EDT = 07:00 UTC
        (
            NEW_YORK,
            utc(2024, 3, 9),
            utc(2024, 3, 12),
            [utc(2024, 3, 9, 7, 30), utc(2024, 3, 10, 7), utc(2024, 3, 11, 6, 30)],
        ),
        # New York fall back 2024-11-03 02:00 EDT → 01:00 EST: 02:30 is not repeated there
        (
            NEW_YORK,
            utc(2024, 11, 2),
            utc(2024, 11, 5),
            [utc(2024, 11, 2, 6, 30), utc(2024, 11, 3, 7, 30), utc(2024, 11, 4, 7, 30)],
        ),
    ],
)
def test_daily_0230_across_dst(
    expression: str, zone: str, start: datetime, end: datetime, expected: list[datetime]
) -> None:
    assert parse_schedule(expression, zone).fires_between(start, end, 100) == expected


def test_repeated_hour_in_new_york_fires_once() -> None:
    spec = parse_schedule("30 1 * * *", NEW_YORK)
    assert spec.fires_between(utc(2024, 11, 2), utc(2024, 11, 5), 10) == [
        utc(2024, 11, 2, 5, 30),
        utc(2024, 11, 3, 5, 30),  # 01:30 EDT, the first of the two
        utc(2024, 11, 4, 6, 30),
    ]


def _quarters(start: datetime, end: datetime, skip: tuple[datetime, datetime] | None = None) -> list[datetime]:
    out, t = [], start + timedelta(minutes=15)
    while t <= end:
        if skip is None or not skip[0] <= t < skip[1]:
            out.append(t)
        t += timedelta(minutes=15)
    return out


@pytest.mark.parametrize("expression", QUARTER)
@pytest.mark.parametrize(
    ("zone", "start", "end", "expected"),
    [
        # spring forward: 02:00-02:45 CET do not exist and collapse onto 03:00 CEST with 03:00 itself
        (BERLIN, utc(2024, 3, 31, 0), utc(2024, 3, 31, 1, 30), _quarters(utc(2024, 3, 31, 0), utc(2024, 3, 31, 1, 30))),
        (
            NEW_YORK,
            utc(2024, 3, 10, 6),
            utc(2024, 3, 10, 7, 30),
            _quarters(utc(2024, 3, 10, 6), utc(2024, 3, 10, 7, 30)),
        ),
        # fall back: the second pass through the repeated hour fires nothing
        (
            BERLIN,
            utc(2024, 10, 26, 23, 30),
            utc(2024, 10, 27, 2, 30),
            _quarters(
                utc(2024, 10, 26, 23, 30), utc(2024, 10, 27, 2, 30), (utc(2024, 10, 27, 1), utc(2024, 10, 27, 2))
            ),
        ),
        (
            NEW_YORK,
            utc(2024, 11, 3, 4, 30),
            utc(2024, 11, 3, 7, 30),
            _quarters(utc(2024, 11, 3, 4, 30), utc(2024, 11, 3, 7, 30), (utc(2024, 11, 3, 6), utc(2024, 11, 3, 7))),
        ),
    ],
)
def test_every_quarter_hour_across_dst(
    expression: str, zone: str, start: datetime, end: datetime, expected: list[datetime]
) -> None:
    spec = parse_schedule(expression, zone)
    fires = spec.fires_between(start, end, 100)
    assert fires == expected
    # chaining next_fire from every fire gives the same sequence
    chained, t = [], start
    for _ in expected:
        t = spec.next_fire(t)
        chained.append(t)
    assert chained == expected


def test_start_inside_second_pass_of_repeated_hour() -> None:
    # 2024-10-27 01:10 UTC = 02:10 CET (second pass); 02:30 already fired at 00:30 UTC
    assert parse_schedule("30 2 * * *", BERLIN).next_fire(utc(2024, 10, 27, 1, 10)) == utc(2024, 10, 28, 1, 30)
    assert parse_schedule("* * * * * *", BERLIN).next_fire(utc(2024, 10, 27, 1, 10)) == utc(2024, 10, 27, 2)
    assert parse_schedule("30 2 * * *", BERLIN).next_fire(utc(2024, 10, 27, 0, 10)) == utc(2024, 10, 27, 0, 30)


def test_lord_howe_half_hour_dst() -> None:
    spec = parse_schedule("*/15 * * * *", "Australia/Lord_Howe")
    # spring forward 2024-10-06 02:00 → 02:30 (+10:30 → +11) at 15:30 UTC
    assert spec.fires_between(utc(2024, 10, 5, 15), utc(2024, 10, 5, 16), 10) == _quarters(
        utc(2024, 10, 5, 15), utc(2024, 10, 5, 16)
    )
    # fall back 2024-04-07 02:00 → 01:30 at 15:00 UTC: 01:30 and 01:45 are not repeated
    assert spec.fires_between(utc(2024, 4, 6, 14), utc(2024, 4, 6, 16), 10) == _quarters(
        utc(2024, 4, 6, 14), utc(2024, 4, 6, 16), (utc(2024, 4, 6, 15), utc(2024, 4, 6, 15, 30))
    )


# --------------------------------------------------------------------------- properties

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]
# (name, low, high, '*' high, names) seconds first; day-of-month kept <= 28 so every expression fires
FIELDS = [
    ("second", 0, 59, 59, ()),
    ("minute", 0, 59, 59, ()),
    ("hour", 0, 23, 23, ()),
    ("dom", 1, 28, 31, ()),
    ("month", 1, 12, 12, ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")),
    ("dow", 0, 7, 6, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")),
]
Field = tuple[str, frozenset[int]]


@st.composite
def field_strategy(draw: st.DrawFn, index: int) -> Field:
    _, low, high, star_high, names = FIELDS[index]
    base = 1 if names and names[0] == "JAN" else 0

    def show(v: int) -> str:
        if names and v - base < len(names) and draw(st.booleans()):
            return names[v - base].lower() if draw(st.booleans()) else names[v - base]
        return str(v)

    kind = draw(st.sampled_from(["star", "value", "range", "step", "range_step", "list"]))
    if kind == "star":
        text, values = "*", set(range(low, star_high + 1))
    elif kind == "value":
        v = draw(st.integers(low, high))
        text, values = show(v), {v}
    elif kind in ("range", "range_step"):
        a = draw(st.integers(low, high))
        b = draw(st.integers(a, high))
        step = draw(st.integers(1, 10)) if kind == "range_step" else 1
        text = f"{show(a)}-{show(b)}" + (f"/{step}" if kind == "range_step" else "")
        values = set(range(a, b + 1, step))
    elif kind == "step":
        step = draw(st.integers(1, 15))
        text, values = f"*/{step}", set(range(low, star_high + 1, step))
    else:
        items = draw(st.lists(st.integers(low, high), min_size=1, max_size=4))
        text, values = ",".join(show(v) for v in items), set(items)
    if index == 5 and 7 in values:
        values = (values - {7}) | {0}
    return text, frozenset(values)


@st.composite
def cron_strategy(draw: st.DrawFn) -> tuple[str, list[frozenset[int]]]:
    fields = [draw(field_strategy(i)) for i in range(6)]
    if draw(st.booleans()):  # five-field form: seconds fixed at 0
        return " ".join(text for text, _ in fields[1:]), [frozenset({0})] + [v for _, v in fields[1:]]
    return " ".join(text for text, _ in fields), [v for _, v in fields]


def matcher(sets: list[frozenset[int]]) -> Callable[[datetime], bool]:
    second, minute, hour, dom, month, dow = sets
    dom_restricted, dow_restricted = dom != frozenset(range(1, 32)), dow != frozenset(range(7))

    def matches(wall: datetime) -> bool:
        in_dom, in_dow = wall.day in dom, wall.isoweekday() % 7 in dow
        both = dom_restricted and dow_restricted
        day_ok = (in_dom or in_dow) if both else (in_dom and in_dow)  # Vixie-cron OR semantics
        return day_ok and wall.month in month and wall.hour in hour and wall.minute in minute and wall.second in second

    return matches


def naive_wall(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment.astimezone(zone).replace(tzinfo=None)


starts = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 12, 31)).map(
    lambda d: d.replace(tzinfo=UTC)
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cron=cron_strategy(), start=starts, zone_name=st.sampled_from(ZONES))
def test_property_fires_match_expression(
    cron: tuple[str, list[frozenset[int]]], start: datetime, zone_name: str
) -> None:
    expression, sets = cron
    matches, zone = matcher(sets), ZoneInfo(zone_name)
    spec = parse_schedule(expression, zone_name)
    fires = spec.next_fires(start, 4)
    assert fires[0] > start
    assert all(a < b for a, b in pairwise(fires))
    assert spec.next_fire(fires[0]) == fires[1]
    for fire in fires:
        assert fire.tzinfo is UTC
        wall = naive_wall(fire, zone)
        if matches(wall):
            continue
        # otherwise it must be the first instant after a DST gap holding a matching wall time
        before = naive_wall(fire - timedelta(seconds=1), zone)
        gap = wall - before - timedelta(seconds=1)
        assert gap > timedelta(0), f"{fire} ({wall} local) does not match {expression!r}"
        assert any(matches(before + timedelta(seconds=s)) for s in range(1, int(gap.total_seconds()) + 1))
    if zone_name == "UTC":
        it = croniter(" ".join(spec.fields), start, ret_type=datetime, second_at_beginning=True)
        assert fires == [it.get_next(datetime).astimezone(UTC) for _ in fires]


TRANSITIONS = [
    ("Europe/Berlin", utc(2024, 3, 31, 1)),
    ("Europe/Berlin", utc(2024, 10, 27, 1)),
    ("America/New_York", utc(2024, 3, 10, 7)),
    ("America/New_York", utc(2024, 11, 3, 6)),
    ("Australia/Lord_Howe", utc(2024, 10, 5, 15, 30)),
    ("Australia/Lord_Howe", utc(2024, 4, 6, 15)),
    ("Europe/Berlin", utc(2031, 3, 30, 1)),
    ("America/New_York", utc(2037, 11, 1, 6)),
]


def brute_force(matches: Callable[[datetime], bool], zone: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    """Fires per the documented rule, minute by minute in UTC (five-field expressions only)."""
    out, t = [], start.replace(second=0, microsecond=0) + timedelta(minutes=1)
    while t <= end:
        local, wall = t.astimezone(zone), naive_wall(t, zone)
        previous = naive_wall(t - timedelta(minutes=1), zone)
        skipped = [previous + timedelta(minutes=m) for m in range(1, (wall - previous) // timedelta(minutes=1))]
        if (matches(wall) and local.fold == 0) or any(matches(w) for w in skipped):
            out.append(t)
        t += timedelta(minutes=1)
    return out


@settings(max_examples=60, deadline=None)
@given(
    minute=field_strategy(1),
    hour=st.one_of(  # DST transitions happen around 01:00-03:00 local: hit those hours often
        field_strategy(2),
        st.sampled_from([("1", frozenset({1})), ("2", frozenset({2})), ("1-2", frozenset({1, 2}))]),
    ),
    where=st.sampled_from(TRANSITIONS),
    offset=st.integers(-12 * 60, 0),
)
def test_property_dst_windows_match_brute_force(
    minute: Field, hour: Field, where: tuple[str, datetime], offset: int
) -> None:
    zone_name, transition = where
    star = frozenset(range(1, 32)), frozenset(range(1, 13)), frozenset(range(7))
    sets = [frozenset({0}), minute[1], hour[1], *star]
    spec = parse_schedule(f"{minute[0]} {hour[0]} * * *", zone_name)
    start = transition + timedelta(minutes=offset)
    end = start + timedelta(hours=14)
    expected = brute_force(matcher(sets), ZoneInfo(zone_name), start, end)
    assert spec.fires_between(start, end, 10_000) == expected


@settings(max_examples=100, deadline=None)
@given(
    seconds=st.integers(1, 3 * 86400),
    anchor=starts,
    start=starts,
)
def test_property_intervals(seconds: int, anchor: datetime, start: datetime) -> None:
    spec = parse_schedule(f"every: {seconds}s", anchor=anchor)
    fires = spec.next_fires(start, 3)
    assert fires[0] > start
    assert fires[0] - start <= timedelta(seconds=seconds) or start < anchor
    assert spec.anchor is not None
    for fire in fires:
        assert (fire - spec.anchor) % timedelta(seconds=seconds) == timedelta(0)
    assert [b - a for a, b in pairwise(fires)] == [timedelta(seconds=seconds)] * 2


@pytest.mark.parametrize("text", ["every: 367d", "every: 9999999d", "every: 99999999999999999999d"])
def test_huge_intervals_are_refused(text: str) -> None:
    with pytest.raises(ValidationError, match="at most 366d"):
        parse_schedule(text)
