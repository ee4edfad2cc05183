"""Cron and interval schedule maths for recurring jobs; croniter does the calendar maths. No I/O.

DST: one fire per wall-clock match in the schedule's zone; a repeated wall time fires at its first occurrence
(fold=0), a skipped one once at the first instant after the gap; intervals ignore DST. Details: parse_schedule.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from itertools import islice
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from tickr.core.errors import ValidationError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)

MACROS: dict[str, str] = {  # seconds-first six-field equivalents
    "@hourly": "0 0 * * * *",
    "@daily": "0 0 0 * * *",
    "@midnight": "0 0 0 * * *",
    "@weekly": "0 0 0 * * 0",
    "@monthly": "0 0 0 1 * *",
    "@yearly": "0 0 0 1 1 *",
    "@annually": "0 0 0 1 1 *",
}

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # Feb 29 exists in leap years
_INTERVAL_RE = re.compile(r"every(?:\s*:\s*|\s+)(.*)", re.IGNORECASE | re.DOTALL)
_DURATION_RE = re.compile(r"(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?")
_DIGITS_RE = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class _Field:
    name: str
    lo: int
    hi: int
    star_hi: int  # upper bound used by '*' and 'a/n' (day-of-week: 6, as 7 is another Sunday)
    names: tuple[str, ...] = ()
    name_base: int = 0

    @property
    def accepted(self) -> str:
        extra = f" or {self.names[0].upper()}-{self.names[-1].upper()}" if self.names else ""
        return f"{self.lo}-{self.hi}{extra}"


_FIELDS = (  # seconds-first order, as croniter's second_at_beginning=True reads them
    _Field("second", 0, 59, 59),
    _Field("minute", 0, 59, 59),
    _Field("hour", 0, 23, 23),
    _Field("day-of-month", 1, 31, 31),
    _Field("month", 1, 12, 12, _MONTHS, 1),
    _Field("day-of-week", 0, 7, 6, _DAYS, 0),
)
_DOM, _MONTH, _DOW = 3, 4, 5


class _FieldError(ValueError):
    """A cron expression is wrong; the message names the field and the value."""


class _SpecError(ValueError):
    """Any other schedule problem: ``key`` is the ``ValidationError.errors`` key, the message is complete."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class CronSpec:
    """A parsed, validated schedule: a cron expression or a fixed interval. Build it with ``parse_schedule``.

    ``fields`` holds the six cron fields, seconds first, in the canonical numeric form handed to croniter
    (empty for an interval); ``interval_seconds`` and ``anchor`` (aware UTC, whole milliseconds) are set
    only for ``every:`` schedules.
    """

    expression: str
    timezone: str = "UTC"
    fields: tuple[str, ...] = ()
    interval_seconds: int | None = None
    anchor: datetime | None = None

    @property
    def is_interval(self) -> bool:
        """True for an ``every:`` schedule (elapsed time, no calendar, no DST)."""
        return self.interval_seconds is not None

    def iter_fires(self, after: datetime) -> Iterator[datetime]:
        """Yield the fire times strictly after ``after`` (aware, any zone), as aware UTC, increasing."""
        if after.tzinfo is None or after.utcoffset() is None:
            raise ValueError("after must be a timezone-aware datetime")
        after = after.astimezone(UTC)
        if self.interval_seconds is not None:
            return self._interval_fires(after, timedelta(seconds=self.interval_seconds))
        return self._cron_fires(after)

    def next_fire(self, after: datetime) -> datetime:
        """The first fire time strictly after ``after``, as an aware UTC datetime."""
        return next(self.iter_fires(after))

    def next_fires(self, after: datetime, count: int) -> list[datetime]:
        """The first ``count`` fire times strictly after ``after``, increasing, aware UTC."""
        return list(islice(self.iter_fires(after), max(count, 0)))

    def fires_between(self, start: datetime, end: datetime, limit: int) -> list[datetime]:
        """Fire times in ``(start, end]`` (start exclusive, end inclusive), at most ``limit`` of them."""
        out: list[datetime] = []
        if limit <= 0:
            return out
        for fire in self.iter_fires(start):
            if fire > end:
                break
            out.append(fire)
            if len(out) >= limit:
                break
        return out

    def _interval_fires(self, after: datetime, step: timedelta) -> Iterator[datetime]:
        anchor = self.anchor or EPOCH
        k = 0 if after < anchor else (after - anchor) // step + 1
        fire = anchor + k * step
        while True:
            yield fire
            fire += step

    def _cron_fires(self, after: datetime) -> Iterator[datetime]:
        zone = ZoneInfo(self.timezone)
        start = _wall_start(after, zone)
        # Naive start: croniter iterates pure wall-clock times and never sees a UTC offset.
        it = croniter(" ".join(self.fields), start, ret_type=datetime, second_at_beginning=True)
        last = after
        while True:
            fire = _wall_to_utc(it.get_next(datetime), zone)
            if fire > last:  # drops wall times already passed and gap times collapsed onto one instant
                last = fire
                yield fire


def parse_schedule(expression: str, timezone: str = "UTC", *, anchor: datetime | None = None) -> CronSpec:
    """Parse and validate a schedule; raise ``ValidationError`` (``errors`` keyed cron/timezone/anchor).

    Accepted: six cron fields with seconds first (``31 10-15 1 * * MON-FRI``); five fields (seconds 0);
    macros @hourly @daily @midnight @weekly @monthly @yearly @annually; intervals ``every: 1h30m``
    (units d h m s, at least 1s), firing at ``anchor + k*interval`` for k >= 0 (anchor defaults to the
    Unix epoch, so ``every: 1h`` fires on the hour; it is floored to whole milliseconds).

    Fields take numbers, names (JAN-DEC, SUN-SAT, any case), ``*``, ranges ``a-b`` (not reversed),
    steps ``*/n``, ``a-b/n`` and ``a/n`` (= a to the field's end), and comma lists; day-of-week 7 is
    Sunday. When both day-of-month and day-of-week are restricted a day matches if EITHER does
    (standard Vixie-cron OR semantics, croniter's default): ``0 0 0 1 * MON`` fires on the 1st and on
    every Monday. A field is restricted when it does not cover its whole range.

    Time zones and DST: a cron schedule fires once per wall-clock match in ``timezone``. A wall time
    repeated by a fall-back transition fires once, at its first occurrence (fold=0). A wall time skipped
    by a spring-forward gap fires once, at the first instant after the gap (02:30 Europe/Berlin on the
    spring-forward day fires at 03:00 CEST = 01:00 UTC); several matches inside one gap, or a gap match
    plus a match at the gap's end, give a single fire. Intervals are elapsed time and ignore DST.
    """
    errors: dict[str, str] = {}
    text = " ".join(expression.split())
    spec: CronSpec | None = None
    try:
        spec = _parse(text, timezone, anchor)
    except _FieldError as exc:
        errors["cron"] = f"invalid cron expression '{text}': {exc}"
    except _SpecError as exc:
        errors[exc.key] = str(exc)
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        errors["timezone"] = f"unknown timezone '{timezone}'"
    if errors or spec is None:
        raise ValidationError("; ".join(errors.values()), errors)
    return spec


def _parse(text: str, timezone: str, anchor: datetime | None) -> CronSpec:
    if not text:
        raise _SpecError("cron", "schedule expression is empty")
    interval = _INTERVAL_RE.fullmatch(text)
    if interval:
        return _parse_interval(text, interval.group(1), timezone, anchor)
    if text.startswith("@"):
        macro = text.lower()
        if macro not in MACROS:
            raise _FieldError(f"unknown macro '{text}'; accepted: {', '.join(MACROS)}")
        text, fields = macro, MACROS[macro].split()
    else:
        fields = text.split(" ")
    if len(fields) not in (5, 6):
        raise _FieldError(
            f"found {len(fields)} field{'s' if len(fields) != 1 else ''}; expected 5 fields "
            "(minute hour day-of-month month day-of-week), 6 fields "
            "(second minute hour day-of-month month day-of-week), a macro such as @daily, "
            "or an interval such as 'every: 30s'"
        )
    if len(fields) == 5:
        fields.insert(0, "0")
    values = [_expand_field(field_text, field) for field_text, field in zip(fields, _FIELDS, strict=True)]
    _check_day_exists(fields, values)
    canonical = tuple(_canonical(field_values, field) for field_values, field in zip(values, _FIELDS, strict=True))
    if not croniter.is_valid(" ".join(canonical), second_at_beginning=True):  # belt and braces
        raise _FieldError("rejected by the cron engine")
    return CronSpec(text, timezone, canonical)


def _canonical(values: frozenset[int], field: _Field) -> str:
    """Plain numbers and ascending runs for croniter, so none of its own readings apply.

    croniter reads an equal range such as ``5-5`` or ``MON-MON`` as the whole field (7.0.0), unlike cron.
    """
    if values == frozenset(range(field.lo, field.star_hi + 1)):
        return "*"
    ordered, parts = sorted(values), []
    start = prev = ordered[0]
    for value in [*ordered[1:], None]:
        if value is not None and value == prev + 1:
            prev = value
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if value is not None:
            start = prev = value
    return ",".join(parts)


MAX_INTERVAL_SECONDS = 366 * 86_400


def _parse_interval(text: str, duration: str, timezone: str, anchor: datetime | None) -> CronSpec:
    compact = "".join(duration.split()).lower()
    match = _DURATION_RE.fullmatch(compact)
    if not compact or match is None:
        raise _SpecError(
            "cron", f"invalid interval '{text}': expected a duration such as 30s, 5m, 1h30m or 2d (units d, h, m, s)"
        )
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    if total < 1:
        raise _SpecError("cron", f"invalid interval '{text}': the interval must be at least 1s")
    if total > MAX_INTERVAL_SECONDS:
        raise _SpecError("cron", f"invalid interval '{text}': the interval must be at most 366d")
    if anchor is not None and (anchor.tzinfo is None or anchor.utcoffset() is None):
        raise _SpecError("anchor", "anchor must be a timezone-aware datetime")
    base = anchor.astimezone(UTC) if anchor is not None else EPOCH
    base = EPOCH + (base - EPOCH) // _ONE_MS * _ONE_MS
    return CronSpec(f"every: {compact}", timezone, (), total, base)


def _expand_field(text: str, field: _Field) -> frozenset[int]:
    """The values one field selects (day-of-week 7 folded to 0); raise ``_FieldError`` naming the field."""
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise _FieldError(f"{field.name} field '{text}' has an empty list item")
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not _DIGITS_RE.fullmatch(step_text) or int(step_text) == 0:
                raise _FieldError(
                    f"{field.name} field '{text}': step '{step_text}' must be a whole number of at least 1"
                )
            step = int(step_text)
        if base == "*":
            lo, hi = field.lo, field.star_hi
        elif "-" in base:
            first, _, last = base.partition("-")
            lo, hi = _field_value(first, text, item, field), _field_value(last, text, item, field)
            if lo > hi:
                raise _FieldError(f"{field.name} field '{text}': range '{base}' is reversed (start after end)")
        else:
            lo = _field_value(base, text, item, field)
            hi = field.star_hi if slash else lo
        values.update(range(lo, hi + 1, step))
    if field.name == "day-of-week" and 7 in values:
        values = (values - {7}) | {0}
    return frozenset(values)


def _field_value(token: str, text: str, item: str, field: _Field) -> int:
    where = f"{field.name} field '{text}'" + ("" if token == text else f": '{token or item}'")
    if _DIGITS_RE.fullmatch(token):
        number = int(token)
        if not field.lo <= number <= field.hi:
            raise _FieldError(f"{where} is out of range {field.accepted}")
        return number
    if token.lower() in field.names:
        return field.names.index(token.lower()) + field.name_base
    raise _FieldError(f"{where} is not valid: expected {field.accepted}, '*', a range, a step or a list")


def _check_day_exists(fields: list[str], values: list[frozenset[int]]) -> None:
    """Reject day-of-month/month pairs that never occur (Feb 30) when day-of-week cannot rescue them."""
    dom, months, dow = values[_DOM], values[_MONTH], values[_DOW]
    if len(dow) < 7:  # restricted day-of-week: OR semantics, the weekdays still fire
        return
    if not any(day <= _DAYS_IN_MONTH[month - 1] for day in dom for month in months):
        raise _FieldError(f"day-of-month '{fields[_DOM]}' never occurs in month '{fields[_MONTH]}'")


def _offset(instant: int, zone: tzinfo) -> timedelta | None:
    return datetime.fromtimestamp(instant, zone).utcoffset()


def _transition(lo: datetime, hi: datetime, zone: tzinfo) -> datetime:
    """The first whole second in ``(lo, hi]`` with ``hi``'s UTC offset; one transition lies in between."""
    lo_s, hi_s = int(lo.timestamp()), int(hi.timestamp())
    target = _offset(hi_s, zone)
    while hi_s - lo_s > 1:
        mid = (lo_s + hi_s) // 2
        if _offset(mid, zone) == target:
            hi_s = mid
        else:
            lo_s = mid
    return datetime.fromtimestamp(hi_s, UTC)


def _wall_to_utc(wall: datetime, zone: tzinfo) -> datetime:
    """Map a naive local wall time to UTC: ambiguous → first occurrence, nonexistent → end of the gap."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first
    # In a gap fold=0 reads the wall time with the pre-gap offset (an instant after the gap) and
    # fold=1 with the post-gap offset (an instant before it); the gap's end lies in between.
    return _transition(wall.replace(tzinfo=zone, fold=1).astimezone(UTC), first, zone)


def _wall_start(after: datetime, zone: tzinfo) -> datetime:
    """The naive wall time to start croniter from (exclusive) so no fire strictly after ``after`` is missed."""
    local = after.astimezone(zone)
    wall = local.replace(tzinfo=None, microsecond=0)  # fires are whole seconds; avoid float rounding
    first = local.replace(fold=0)
    if local.fold == 1 and first.utcoffset() != local.utcoffset():
        # ``after`` is in the second pass of a repeated period: every repeated wall time already fired
        # on its first pass, so resume at the first wall time after the repetition.
        change = _transition(first.astimezone(UTC), after, zone)
        earlier = first.utcoffset()
        assert earlier is not None
        return change.replace(tzinfo=None) + earlier - timedelta(seconds=1)
    return wall


def next_fire_ms(spec: CronSpec, after_ms: int) -> int:
    """The first fire strictly after ``after_ms`` (Unix epoch milliseconds), in epoch milliseconds."""
    return to_ms(spec.next_fire(from_ms(after_ms)))


def fires_between_ms(spec: CronSpec, start_ms: int, end_ms: int, limit: int) -> list[int]:
    """Fire times in ``(start_ms, end_ms]`` as epoch milliseconds, at most ``limit`` of them."""
    return [to_ms(fire) for fire in spec.fires_between(from_ms(start_ms), from_ms(end_ms), limit)]


def from_ms(epoch_ms: int) -> datetime:
    """Epoch milliseconds → aware UTC datetime (exact, no float rounding)."""
    return EPOCH + timedelta(milliseconds=epoch_ms)


def to_ms(moment: datetime) -> int:
    """Aware datetime → epoch milliseconds (floored)."""
    return (moment - EPOCH) // _ONE_MS
