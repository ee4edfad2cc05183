"""The scheduler service: on-time fires, misfire policies, overlap, history with a real worker, wake-ups."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import TestClock
from tests.scheduler.conftest import ServiceFactory
from tests.waiting import wait_until
from tickr.app import App
from tickr.core.errors import Permanent
from tickr.scheduler.manager import Schedules
from tickr.scheduler.service import SchedulerConfig, SchedulerService
from tickr.store.store import RedisStore
from tickr.worker.worker import Worker, WorkerConfig


async def jobs_of(store: RedisStore, queue: str) -> list[dict[str, str]]:
    ids = await store.redis.lrange(store.keys(queue).ready("default"), 0, -1)
    return [{"id": i, **await store.redis.hgetall(store.keys(queue).job(i))} for i in ids]


def fire_time(job: dict[str, str]) -> int:
    return int(job["idempotency_key"].rsplit(":", 1)[1])


async def test_on_time_fires_make_one_job_each(
    schedules: Schedules, make_service: ServiceFactory, clock: TestClock, cstore: RedisStore
) -> None:
    s = await schedules.create("noop", {"n": 1}, cron="* * * * * *", queue="tick", name="ticker")
    service = make_service()
    assert await service.run_once() >= 0  # nothing due yet
    for _ in range(3):
        clock.advance(1)
        await service.run_once()
    jobs = await jobs_of(cstore, "tick")
    first = s.next_run_at or 0
    assert [fire_time(j) for j in jobs] == [first, first + 1000, first + 2000]
    assert all(j["schedule_id"] == s.id and j["name"] == "ticker" and j["type"] == "noop" for j in jobs)
    assert all(int(j["created_at"]) - fire_time(j) < 1000 for j in jobs)
    assert service.fired == 3


@pytest.mark.parametrize(
    ("policy", "expected_offsets", "misfired"),
    [
        ("skip", [10], 10),
        ("catch_up", list(range(1, 11)), 1),
        ("none", [10], 10),  # the 10 s occurrence is 0.5 s old: on time, so it runs
    ],
)
async def test_misfire_policies_after_a_ten_second_stop(
    schedules: Schedules,
    make_service: ServiceFactory,
    clock: TestClock,
    cstore: RedisStore,
    policy: str,
    expected_offsets: list[int],
    misfired: int,
) -> None:
    s = await schedules.create("noop", cron="* * * * * *", queue="late", misfire=policy, max_catch_up=10)
    first = s.next_run_at or 0
    clock.now = first + 10_500  # no scheduler ran for ten seconds
    await make_service().run_once()
    assert [fire_time(j) for j in await jobs_of(cstore, "late")] == [first + 1000 * k for k in expected_offsets]
    after = await schedules.require(s.id)
    assert after.misfired == misfired and after.fired == len(expected_offsets)
    assert after.next_run_at == first + 11_000


async def test_none_policy_runs_nothing_for_a_sparse_schedule(
    schedules: Schedules, make_service: ServiceFactory, clock: TestClock, cstore: RedisStore
) -> None:
    s = await schedules.create("noop", cron="0 * * * * *", queue="none", misfire="none")
    clock.now = (s.next_run_at or 0) + 130_000
    await make_service().run_once()
    after = await schedules.require(s.id)
    assert await jobs_of(cstore, "none") == [] and after.misfired == 3 and after.fired == 0
    assert after.next_run_at == (s.next_run_at or 0) + 180_000


async def test_overlap_false_skips_while_the_previous_run_is_unfinished(
    schedules: Schedules, make_service: ServiceFactory, clock: TestClock, cstore: RedisStore
) -> None:
    s = await schedules.create("noop", cron="* * * * * *", queue="ovl", overlap=False)
    service = make_service()
    clock.advance(1)
    await service.run_once()
    clock.advance(1)
    await service.run_once()  # the first job is still queued: skipped
    after = await schedules.require(s.id)
    assert after.fired == 1 and after.skipped_overlap == 1 and after.next_run_at == (s.next_run_at or 0) + 2000
    leased = (await cstore.dequeue("ovl", 1, "w")).jobs[0]
    assert await cstore.ack_many("ovl", [(leased.job.id, leased.token, "")]) == [True]
    clock.advance(1)
    await service.run_once()  # finished now: runs
    after = await schedules.require(s.id)
    assert after.fired == 2 and after.skipped_overlap == 1
    assert len(await jobs_of(cstore, "ovl")) == 1


async def test_paused_and_deleted_schedules_do_not_fire(
    schedules: Schedules, make_service: ServiceFactory, clock: TestClock, cstore: RedisStore
) -> None:
    a = await schedules.create("noop", cron="* * * * * *", queue="stopq")
    b = await schedules.create("noop", cron="* * * * * *", queue="stopq")
    await schedules.pause(a.id)
    await schedules.delete(b.id)
    clock.advance(3)
    await make_service().run_once()
    assert await jobs_of(cstore, "stopq") == []
    await schedules.resume(a.id)
    clock.advance(1)
    await make_service().run_once()
    assert len(await jobs_of(cstore, "stopq")) == 1


async def test_history_newest_first_with_outcomes(
    sapp: App, schedules: Schedules, make_service: ServiceFactory, clock: TestClock, cstore: RedisStore, queue: str
) -> None:
    @sapp.task(name="hist.ok")
    async def ok() -> str:
        await asyncio.sleep(0.02)  # simulated work: the history's duration_ms is checked below
        return "fine"

    @sapp.task(name="hist.boom")
    async def boom() -> None:
        raise Permanent("it broke")

    good = await schedules.create("hist.ok", cron="* * * * * *", queue=queue)
    bad = await schedules.create("hist.boom", cron="* * * * * *", queue=queue, max_retries=0)
    service = make_service()
    for _ in range(3):
        clock.advance(1)
        await service.run_once()
    await asyncio.wait_for(
        Worker(sapp, WorkerConfig(queues=[queue], burst=True, concurrency=4, wake_cap_seconds=0.2)).run(), 30
    )

    page = await schedules.history(good.id, limit=2)
    assert [e.outcome for e in page.items] == ["succeeded", "succeeded"]
    assert page.items[0].fire_time > page.items[1].fire_time and page.next_cursor
    assert all(e.attempt == 1 and (e.duration_ms or 0) >= 15 and e.error is None for e in page.items)
    rest = await schedules.history(good.id, limit=2, cursor=page.next_cursor)
    assert len(rest.items) == 1 and rest.items[0].fire_time < page.items[1].fire_time and rest.next_cursor is None

    failed = (await schedules.history(bad.id)).items
    assert [e.outcome for e in failed] == ["dead"] * 3
    assert failed[0].error == {"type": "Permanent", "message": "it broke"}

    await cstore.redis.delete(cstore.keys(queue).job(failed[0].job_id))  # retention ran out
    assert (await schedules.history(bad.id)).items[0].outcome == "expired"


async def _fired(schedules: Schedules, schedule_id: str, at_least: int) -> bool:
    return (await schedules.require(schedule_id)).fired >= at_least


async def test_a_change_wakes_every_sleeping_scheduler(sapp: App, schedules: Schedules) -> None:
    config = SchedulerConfig(max_sleep_seconds=30)
    services = [SchedulerService(sapp, config) for _ in range(3)]
    try:
        for s in services:
            await s.start()
        async with asyncio.timeout(5):  # each has done its first pass and is now in its 30 s wait
            await asyncio.gather(*(s.passes.wait_beyond(0) for s in services))
            await asyncio.gather(*(s.listener.started.wait() for s in services))
        before = [s.passes.count for s in services]
        real = Schedules(sapp)
        await real.create("noop", cron="@yearly")  # nothing to fire: only the wake-up shows
        async with asyncio.timeout(3):
            await asyncio.gather(*(s.passes.wait_beyond(b) for s, b in zip(services, before, strict=True)))
        every_second = await real.create("noop", cron="* * * * * *", queue="wake")
        # Fired twice within the schedulers' 30 s sleeps: woken by the change, then timed to the second.
        await wait_until(lambda: _fired(real, every_second.id, 2), timeout=5, message="two fires")
    finally:
        await asyncio.gather(*(s.stop() for s in services))


async def test_a_broken_schedule_is_parked_not_spun_on(
    schedules: Schedules, make_service: ServiceFactory, clock: TestClock, cstore: RedisStore
) -> None:
    broken = await schedules.create("noop", cron="* * * * * *", queue="park")
    gone = await schedules.create("noop", cron="* * * * * *", queue="park")
    fine = await schedules.create("noop", cron="* * * * * *", queue="park")
    await cstore.redis.hset(schedules.db.keys.schedule(broken.id), "timezone", "Nowhere/Land")
    await cstore.redis.delete(schedules.db.keys.schedule(gone.id))
    service = make_service()
    for _ in range(2):
        clock.advance(1)
        assert await service.run_once() > 0.5  # the broken ones stay due, yet no busy loop
    assert set(service._parked) == {broken.id, gone.id}
    assert (await schedules.require(fine.id)).fired == 2
    assert {j["schedule_id"] for j in await jobs_of(cstore, "park")} == {fine.id}
