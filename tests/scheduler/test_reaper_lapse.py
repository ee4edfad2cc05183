"""The reaper releases the leases of workers whose heartbeat lapsed, and wakes in time to see the next lapse."""

from __future__ import annotations

import pytest

from tests.conftest import TestClock
from tickr.core.factory import new_job
from tickr.scheduler.reaper import DEADLINE_MARGIN_SECONDS, Reaper
from tickr.store.store import RedisStore


async def leased_by(store: RedisStore, queue: str, worker: str, n: int = 1) -> list[str]:
    for _ in range(n):
        await store.enqueue(new_job("noop", {}, queue=queue))
    await store.workers.register(worker, [queue], 4, 0, 30)
    return [j.job.id for j in (await store.dequeue(queue, n, worker)).jobs]


async def test_a_pass_releases_a_lapsed_workers_leases(clocked_store: RedisStore, queue: str, clock: TestClock) -> None:
    ids = await leased_by(clocked_store, queue, "gone", 2)
    reaper = Reaper(clocked_store, [queue], max_sleep=10.0, lapse_ms=6_000, heartbeat_seconds=2.0)
    assert reaper.max_sleep == 2.0
    clock.advance(5)
    await clocked_store.workers.register("live", [queue], 4, 0, 30)
    # Nothing lapsed yet: the pass sleeps until "gone" lapses (1 s away), under the 2 s cap.
    assert await reaper.reap_once() == pytest.approx(1.001 + DEADLINE_MARGIN_SECONDS)
    clock.now += 1_001
    sleep = await reaper.reap_once()
    assert reaper.reaped == 2
    assert sleep == 2.0  # "live" lapses in 5 s: the cap wins
    k = clocked_store.keys(queue)
    assert await clocked_store.redis.zcard(k.active) == 0
    assert sorted(await clocked_store.redis.lrange(k.ready("default"), 0, -1)) == sorted(ids)
    assert await clocked_store.redis.zrange(k.beats, 0, -1) == ["live"]


async def test_lapse_zero_leaves_only_lease_expiry(clocked_store: RedisStore, queue: str, clock: TestClock) -> None:
    (job_id,) = await leased_by(clocked_store, queue, "gone")
    reaper = Reaper(clocked_store, [queue], max_sleep=10.0, lapse_ms=0, heartbeat_seconds=2.0)
    assert reaper.max_sleep == 10.0
    clock.advance(7)
    await reaper.reap_once()
    assert reaper.reaped == 0
    assert await clocked_store.redis.zscore(clocked_store.keys(queue).active, job_id) is not None
    clock.advance(4)  # the 10 s lease expires: reaped the old way
    await reaper.reap_once()
    assert reaper.reaped == 1
