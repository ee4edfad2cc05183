"""The schedule scripts against a real Redis: headers, compare-and-set, racing schedulers, crash recovery."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from tests.conftest import TestClock
from tests.scheduler.conftest import ServiceFactory
from tickr.core.schedule import FiredRun, FireRequest
from tickr.scheduler.manager import Schedules
from tickr.store.keys import ScheduleKeys
from tickr.store.schedule_store import ScheduleStore
from tickr.store.scripts import SCRIPT_NAMES, Scripts, lua_source
from tickr.store.store import RedisStore

SCRIPTS = ("schedule_save", "schedule_fire", "schedule_delete", "schedule_due")


async def ready(store: RedisStore, queue: str) -> list[str]:
    return list(await store.redis.lrange(store.keys(queue).ready("default"), 0, -1))


@pytest.mark.parametrize("name", SCRIPTS)
async def test_header_lists_every_key_the_wrapper_passes(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    source = lua_source(name)
    assert source.startswith("#!lua\n") and name in SCRIPT_NAMES
    declared = {int(n) for n in re.findall(r"^\s*KEYS\[(\d+)\]", source, re.MULTILINE)}
    assert declared == set(range(1, len(declared) + 1))
    assert re.search(r"^\s*Returns:", source, re.MULTILINE)
    passed: list[list[str]] = []

    async def capture(self: Scripts, script: str, keys: list[str], args: list[Any], client: Any) -> Any:
        passed.append(keys)

    monkeypatch.setattr(Scripts, "_run", capture)
    method = getattr(Scripts.__new__(Scripts), name)
    await (method(ScheduleKeys("p"), []) if name == "schedule_due" else method(ScheduleKeys("p"), "id", []))
    assert len(passed[0]) == len(declared)
    assert all(key.startswith("p:{schedules}:") for key in passed[0])


async def test_fire_is_a_compare_and_set(schedules: Schedules, clock: TestClock) -> None:
    s = await schedules.create("noop", cron="* * * * * *", queue="q")
    db = schedules.db
    clock.advance(1)
    run = FiredRun(s.next_run_at or 0, "q", "job-1")
    first = await db.fire(FireRequest(s.id, run.fire_ms, run.fire_ms + 1000, [run]))
    second = await db.fire(FireRequest(s.id, run.fire_ms, run.fire_ms + 1000, [run]))
    assert first == (True, run.fire_ms + 1000)
    assert second == (False, run.fire_ms + 1000)
    after = await schedules.require(s.id)
    assert after.fired == 1 and after.last_job_id == "job-1" and after.last_run_at == run.fire_ms
    assert [r.job_id for r in await db.runs(s.id, 10)] == ["job-1"]
    assert await db.redis.zscore(db.keys.due, s.id) == run.fire_ms + 1000


async def test_fire_refused_when_paused_or_deleted(schedules: Schedules) -> None:
    s = await schedules.create("noop", cron="* * * * * *")
    await schedules.pause(s.id)
    assert (await schedules.db.fire(FireRequest(s.id, s.next_run_at or 0, 1)))[0] is False
    await schedules.resume(s.id)
    await schedules.delete(s.id)
    current = await schedules.require(s.id)
    assert (await schedules.db.fire(FireRequest(s.id, current.next_run_at or 0, 1)))[0] is False
    assert await schedules.db.fire(FireRequest("missing", 1, 2)) == (False, None)


async def test_two_schedulers_racing_make_one_job_and_one_advance(
    schedules: Schedules, make_service: ServiceFactory, clock: TestClock, cstore: RedisStore
) -> None:
    s = await schedules.create("noop", cron="* * * * * *", queue="race")
    a, b = make_service(), make_service()
    for _ in range(5):
        clock.advance(1)
        await asyncio.gather(a.run_once(), b.run_once())
    jobs = await ready(cstore, "race")
    assert len(jobs) == 5 and len(set(jobs)) == 5
    assert a.fired + b.fired == 5
    after = await schedules.require(s.id)
    assert after.fired == 5 and after.next_run_at == (s.next_run_at or 0) + 5000
    runs = await schedules.db.runs(s.id, 10)
    assert sorted(r.job_id for r in runs) == sorted(jobs)
    assert len({r.fire_ms for r in runs}) == 5


async def test_a_scheduler_killed_between_enqueue_and_advance_loses_and_doubles_nothing(
    schedules: Schedules, make_service: ServiceFactory, clock: TestClock, cstore: RedisStore
) -> None:
    s = await schedules.create("noop", cron="* * * * * *", queue="crash")
    clock.advance(1)
    dying = make_service()
    fire = s.next_run_at or 0
    orphan = await cstore.enqueue(dying._job(s, fire))  # step 1 done, then the process died
    survivor = make_service()
    await survivor.run_once()
    assert await ready(cstore, "crash") == [orphan.id]
    after = await schedules.require(s.id)
    assert after.last_job_id == orphan.id and after.fired == 1 and after.next_run_at == fire + 1000
    job = await cstore.redis.hgetall(cstore.keys("crash").job(orphan.id))
    assert job["schedule_id"] == s.id and job["idempotency_key"] == f"schedule:{s.id}:{fire}"


async def test_a_loser_cancels_a_job_the_winner_did_not_record(
    schedules: Schedules, make_service: ServiceFactory, clock: TestClock, cstore: RedisStore
) -> None:
    s = await schedules.create("noop", cron="* * * * * *", queue="orph")
    clock.advance(1)
    fire = s.next_run_at or 0
    service = make_service()
    job = service._job(s, fire)
    result = await cstore.enqueue(job)
    # Another scheduler advanced past this occurrence without running it (e.g. an overlap skip).
    assert (await schedules.db.fire(FireRequest(s.id, fire, fire + 1000, skipped_overlap=1)))[0]
    await service._drop_orphans(s.id, [FiredRun(fire, "orph", result.id)], [result])
    assert await cstore.redis.hget(cstore.keys("orph").job(result.id), "status") == "cancelled"


async def test_save_modes_and_version_conflicts(schedules: Schedules) -> None:
    s = await schedules.create("noop", cron="@daily")
    db: ScheduleStore = schedules.db
    assert (await db.save(s, mode="create"))[0] == -1
    assert await db.save(s, mode="ensure") == (0, 1)
    assert (await db.save(s.with_changes(id="nope"), mode="update"))[0] == -2
    assert await db.save(s, mode="update", expected_version=1) == (1, 2)
    assert await db.save(s, mode="update", expected_version=1) == (-3, 2)
    assert await db.redis.zcard(db.keys.notify) >= 2
