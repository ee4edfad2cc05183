"""Which occurrences a due schedule runs now: on time, or a misfire resolved by its policy. Pure, no I/O.

An occurrence is on time when it is at most ``tolerance_ms`` old; a schedule whose stored next fire time is
older than that has misfired (no scheduler ran for a while) and its ``Misfire`` policy decides.
"""

from __future__ import annotations

from dataclasses import dataclass

from tickr.core.cron import CronSpec, fires_between_ms, next_fire_ms
from tickr.core.schedule import Misfire

MISFIRE_TOLERANCE_MS = 1_000  # default: later than this, an occurrence counts as missed
ON_TIME_LIMIT = 1_000  # most on-time occurrences run in one pass (the rest follow in the next pass)
MISSED_COUNT_CAP = 1_000  # missed occurrences are counted exactly up to this many per pass
_SCAN_LIMIT = 10_000  # most fire times examined in one look-back window


@dataclass(frozen=True, slots=True)
class FirePlan:
    """What one pass does with a due schedule.

    ``run``: occurrences to enqueue (epoch ms, oldest first); ``next_run_at``: the next fire time to store;
    ``misfired``: missed occurrences that will never run; ``late``: whether this was a misfire.
    """

    run: list[int]
    next_run_at: int
    misfired: int = 0
    late: bool = False


def plan_fires(
    spec: CronSpec,
    next_run_at: int,
    now_ms: int,
    *,
    policy: Misfire = Misfire.SKIP,
    max_catch_up: int = 10,
    tolerance_ms: int = MISFIRE_TOLERANCE_MS,
    horizon_ms: int | None = None,
) -> FirePlan:
    """Plan the pass for a schedule whose stored next fire time is ``next_run_at``, at ``now_ms``.

    On time (``now - next_run_at <= tolerance``): every occurrence in ``[next_run_at, now]`` runs.
    Misfire: ``skip`` runs the latest occurrence, ``catch_up`` the latest ``max_catch_up`` (oldest first),
    ``none`` only occurrences still on time; then the schedule continues from the first fire after ``now``.
    Occurrences older than ``horizon_ms`` never run (their idempotency keys may have expired, so running them
    could run one twice); every occurrence not run is counted in ``misfired`` (up to ``MISSED_COUNT_CAP``).
    """
    if next_run_at > now_ms:
        return FirePlan([], next_run_at)
    if now_ms - next_run_at <= tolerance_ms:
        run = [next_run_at, *fires_between_ms(spec, next_run_at, now_ms, ON_TIME_LIMIT - 1)]
        return FirePlan(run, next_fire_ms(spec, run[-1]))
    missed = 1 + len(fires_between_ms(spec, next_run_at, now_ms, MISSED_COUNT_CAP - 1))
    oldest = next_run_at if horizon_ms is None else max(next_run_at, now_ms - horizon_ms)
    if policy is Misfire.CATCH_UP:
        run = latest_fires(spec, oldest - 1, now_ms, max(1, max_catch_up))
    elif policy is Misfire.SKIP:
        run = latest_fires(spec, oldest - 1, now_ms, 1)
    else:
        window = max(oldest - 1, now_ms - tolerance_ms - 1)
        run = fires_between_ms(spec, window, now_ms, ON_TIME_LIMIT)
    return FirePlan(run, next_fire_ms(spec, now_ms), max(0, missed - len(run)), late=True)


def latest_fires(spec: CronSpec, after_ms: int, now_ms: int, count: int) -> list[int]:
    """The latest ``count`` fire times in ``(after_ms, now_ms]``, oldest first.

    Looks back through growing windows so a long outage costs a few calls, not one per missed fire.
    """
    if count <= 0 or now_ms <= after_ms:
        return []
    width = 1_000
    while True:
        start = max(after_ms, now_ms - width)
        found = fires_between_ms(spec, start, now_ms, _SCAN_LIMIT)
        if len(found) >= count or start == after_ms:
            return found[-count:]
        width *= 4
