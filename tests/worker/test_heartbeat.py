"""The heartbeat: a light liveness beat every ``beat_interval``, the full one (leases, registry) every ``interval``."""

from __future__ import annotations

import time

from tests.conftest import TestClock
from tickr.core.factory import new_job
from tickr.store.store import RedisStore
from tickr.worker.heartbeat import Heartbeat


async def test_light_beats_between_full_ones(clocked_store: RedisStore, queue: str, clock: TestClock) -> None:
    s, k = clocked_store, clocked_store.keys(queue)
    await s.enqueue(new_job("noop", {}, queue=queue))
    (leased,) = (await s.dequeue(queue, 1, "w1")).jobs
    leases = {queue: [(leased.job.id, leased.token)]}
    hb = Heartbeat(s, "w1", [queue], 4, lambda: leases, lambda q, j: None, interval=60.0, beat_interval=2.0)
    assert hb.beat_interval == 2.0 and hb.max_backoff == 2.0
    assert await hb.run_pass() == 2.0  # the first pass is a full one: lease extended, worker registered
    assert await s.redis.zscore(k.active, leased.job.id) == clock.now + 10_000
    assert await s.redis.exists("tickr:worker:w1")
    clock.advance(3)
    assert await hb.run_pass() == 2.0  # a light one: the beat moves, the lease does not
    assert await s.redis.zscore(k.beats, "w1") == clock.now
    assert await s.redis.zscore("tickr:workers", "w1") == clock.now
    assert await s.redis.zscore(k.active, leased.job.id) == clock.now - 3_000 + 10_000
    hb._next_full = time.monotonic()  # the full interval is over
    await hb.run_pass()
    assert await s.redis.zscore(k.active, leased.job.id) == clock.now + 10_000
    await hb.deregister()
    assert await s.redis.zscore(k.beats, "w1") is None
    assert not await s.redis.exists("tickr:worker:w1")


async def test_a_light_beat_is_scored_on_the_server_clock(store: RedisStore, queue: str) -> None:
    hb = Heartbeat(store, "w-real", [queue], 1, dict, lambda q, j: None, interval=0.9, beat_interval=5.0)
    assert hb.beat_interval == 0.9  # never rarer than the full beat
    await hb.register()
    await hb.pulse()
    score = await store.redis.zscore(store.keys(queue).beats, "w-real")
    assert score is not None and abs(score - await store.server_time_ms()) < 1_000
    await hb.deregister()
