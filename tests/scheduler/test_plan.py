"""Misfire planning: which occurrences a due schedule runs, pure maths with no Redis."""

from __future__ import annotations

import itertools
import time

from tickr.core.cron import next_fire_ms, parse_schedule
from tickr.core.schedule import Misfire
from tickr.scheduler.cron import latest_fires, plan_fires

T = 1_800_000_000_000  # a whole second (and hour) in UTC
EVERY_SECOND = parse_schedule("* * * * * *")
HOURLY = parse_schedule("@hourly")
DAILY = parse_schedule("0 0 6 * * *")
S, H, D = 1_000, 3_600_000, 86_400_000


def test_not_due_runs_nothing() -> None:
    assert plan_fires(EVERY_SECOND, T, T - 1).run == []


def test_on_time_runs_the_occurrence_and_moves_to_the_next() -> None:
    plan = plan_fires(EVERY_SECOND, T, T + 5)
    assert (plan.run, plan.next_run_at, plan.misfired, plan.late) == ([T], T + S, 0, False)


def test_within_tolerance_every_occurrence_runs() -> None:
    plan = plan_fires(EVERY_SECOND, T, T + 1000, tolerance_ms=1000)
    assert plan.run == [T, T + S] and plan.next_run_at == T + 2 * S and not plan.late


def test_skip_runs_the_latest_missed_once() -> None:
    plan = plan_fires(EVERY_SECOND, T, T + 10_500, policy=Misfire.SKIP)
    assert plan.run == [T + 10 * S]
    assert plan.next_run_at == T + 11 * S and plan.misfired == 10 and plan.late


def test_catch_up_runs_the_latest_max_catch_up_oldest_first() -> None:
    plan = plan_fires(EVERY_SECOND, T, T + 10_500, policy=Misfire.CATCH_UP, max_catch_up=10)
    assert plan.run == [T + i * S for i in range(1, 11)] and plan.misfired == 1
    plan = plan_fires(EVERY_SECOND, T, T + 10_500, policy=Misfire.CATCH_UP, max_catch_up=50)
    assert plan.run == [T + i * S for i in range(11)] and plan.misfired == 0


def test_none_runs_only_occurrences_still_on_time() -> None:
    plan = plan_fires(HOURLY, T, T + 3 * H + 1_800_000, policy=Misfire.NONE)
    assert plan.run == [] and plan.misfired == 4 and plan.next_run_at == T + 4 * H
    plan = plan_fires(EVERY_SECOND, T, T + 10_500, policy=Misfire.NONE)
    assert plan.run == [T + 10 * S] and plan.misfired == 10


def test_occurrences_beyond_the_horizon_never_run() -> None:
    first = next_fire_ms(DAILY, T)
    now = first + 5 * D + H
    plan = plan_fires(DAILY, first, now, policy=Misfire.CATCH_UP, max_catch_up=10, horizon_ms=D)
    assert plan.run == [first + 5 * D] and plan.misfired == 5
    assert plan_fires(DAILY, first, first + 3 * D + 2 * H, policy=Misfire.SKIP, horizon_ms=H).run == []


def test_a_long_outage_is_planned_quickly() -> None:
    began = time.perf_counter()
    plan = plan_fires(EVERY_SECOND, T, T + 30 * D + 400, policy=Misfire.CATCH_UP, max_catch_up=5)
    assert plan.run == [T + 30 * D - i * S for i in range(4, -1, -1)]
    assert plan.misfired == 1000 - 5  # counted up to the cap
    assert time.perf_counter() - began < 1.0


def test_latest_fires_in_a_sparse_schedule() -> None:
    yearly = parse_schedule("@yearly")
    fires = latest_fires(yearly, T - 10 * 365 * D, T, 3)
    assert len(fires) == 3 and fires == sorted(fires) and fires[-1] <= T
    assert latest_fires(yearly, T - D, T, 3) == []


def test_misfire_across_a_dst_gap_keeps_local_wall_times() -> None:
    berlin = parse_schedule("0 30 2 * * *", "Europe/Berlin")  # 02:30 does not exist on 2027-03-28
    first = next_fire_ms(berlin, 1_806_000_000_000)  # 2027-03-26 02:30 CET
    plan = plan_fires(berlin, first, first + 4 * D, policy=Misfire.CATCH_UP, max_catch_up=10)
    gaps = [b - a for a, b in itertools.pairwise(plan.run)]
    # 03-27 02:30 CET, 03-28 03:00 CEST (the end of the gap), 03-29 02:30 CEST
    assert gaps == [D, D - 30 * 60_000, D - 30 * 60_000, D]
