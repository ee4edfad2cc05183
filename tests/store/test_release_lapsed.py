"""``release_lapsed``: the leases of a worker whose heartbeat lapsed go back at once, exactly as an expired
lease would, fenced so the worker cannot complete a job once it is released; live workers are never touched."""

from __future__ import annotations

import pytest

from tests.conftest import TestClock
from tickr.config import Settings
from tickr.core.factory import new_job
from tickr.store import codec
from tickr.store.store import RedisStore, StoreConfig

LAPSE_MS = 6_000


async def put(store: RedisStore, queue: str, **kw: object) -> str:
    return (await store.enqueue(new_job("noop", {}, queue=queue, **kw))).id  # type: ignore[arg-type]


async def status(store: RedisStore, queue: str, job_id: str) -> str:
    return str(await store.redis.hget(store.keys(queue).job(job_id), "status"))


async def beat(store: RedisStore, worker: str, queue: str) -> None:
    await store.workers.register(worker, [queue], 4, 0, 30)


async def test_lapsed_workers_leases_are_requeued_dead_or_lost(
    clocked_store: RedisStore, queue: str, clock: TestClock
) -> None:
    s, k = clocked_store, clocked_store.keys(queue)
    alo = await put(s, queue, priority="high")
    amo = await put(s, queue, execution="at_most_once")
    spent = await put(s, queue, max_retries=0)
    await beat(s, "w1", queue)
    leases = (await s.dequeue(queue, 3, "w1")).jobs
    assert {j.job.id for j in leases} == {alo, amo, spent}
    await s.redis.delete(k.marker)
    clock.advance(LAPSE_MS / 1000)  # exactly the lapse: not yet lapsed
    nothing = await s.release_lapsed(queue, LAPSE_MS)
    assert (nothing.requeued, nothing.dead, nothing.lost, nothing.workers) == (0, 0, 0, 0)
    assert nothing.next_check_ms == clock.now + 1
    clock.advance(0.001)
    result = await s.release_lapsed(queue, LAPSE_MS)
    assert (result.requeued, result.dead, result.lost, result.workers) == (1, 1, 1, 1)
    assert result.next_check_ms is None  # nobody beats on the queue any more
    assert await status(s, queue, alo) == "queued" and await s.redis.lrange(k.ready("high"), 0, -1) == [alo]
    assert await status(s, queue, amo) == "lost"
    assert await status(s, queue, spent) == "dead"
    error = codec.loads(await s.redis.hget(k.job(spent), "error"))
    assert error["type"] == "LeaseExpired" and error["message"].startswith("heartbeat lapsed on attempt 1 (worker w1")
    assert await s.redis.zcard(k.active) == 0 and await s.redis.zscore(k.dead, spent) == clock.now
    assert await s.redis.zscore(k.beats, "w1") is None
    assert await s.redis.zscore(k.marker, "m") == clock.now  # woken: a job is ready again
    stats = await s.redis.hgetall(k.stats)
    assert (stats["reaped"], stats["dead"], stats["lost"]) == ("3", "1", "1")
    events = [fields for _, fields in await s.redis.xrange(k.events) if fields.get("reaped") == "1"]
    assert sorted(e["e"] for e in events) == ["dead", "lost", "queued"]
    assert {e["worker"] for e in events} == {"w1"} and all(e["lease"] for e in events)
    again = (await s.dequeue(queue, 5, "w2")).jobs
    assert [j.job.id for j in again] == [alo] and again[0].job.attempt == 2


async def test_live_and_other_workers_leases_are_untouched(
    clocked_store: RedisStore, queue: str, clock: TestClock
) -> None:
    s, k = clocked_store, clocked_store.keys(queue)
    ids = [await put(s, queue) for _ in range(3)]
    await beat(s, "dead", queue)
    await beat(s, "live", queue)
    (mine,) = (await s.dequeue(queue, 1, "dead")).jobs
    (live,) = (await s.dequeue(queue, 1, "live")).jobs
    (unregistered,) = (await s.dequeue(queue, 1, "bare")).jobs  # a store client that never beats
    assert {mine.job.id, live.job.id, unregistered.job.id} == set(ids)
    clock.advance(4)
    await beat(s, "live", queue)
    clock.advance(4)
    result = await s.release_lapsed(queue, LAPSE_MS)
    assert (result.requeued, result.workers) == (1, 1)
    assert result.next_check_ms == clock.now - 4_000 + LAPSE_MS + 1  # when "live" lapses unless it beats
    assert await status(s, queue, mine.job.id) == "queued"
    for held in (live, unregistered):
        assert await status(s, queue, held.job.id) == "active"
        assert await s.redis.hget(k.job(held.job.id), "token") == held.token
    assert await s.redis.zrange(k.active, 0, -1) == sorted([live.job.id, unregistered.job.id])
    assert await s.redis.zrange(k.beats, 0, -1) == ["live"]
    assert await s.ack_many(queue, [(live.job.id, live.token, "")]) == [True]


async def test_a_job_re_leased_to_another_worker_is_not_touched(
    clocked_store: RedisStore, queue: str, clock: TestClock
) -> None:
    s = clocked_store
    job_id = await put(s, queue)
    await beat(s, "w1", queue)
    (first,) = (await s.dequeue(queue, 1, "w1")).jobs
    clock.advance(11)  # the lease expires first (10 s here): the job moves on to w2
    assert (await s.reap(queue)).requeued == 1
    await beat(s, "w2", queue)
    (second,) = (await s.dequeue(queue, 1, "w2")).jobs
    assert second.job.id == job_id and second.token != first.token
    result = await s.release_lapsed(queue, LAPSE_MS)  # w1 lapsed, w2 did not
    assert (result.requeued, result.dead, result.lost, result.workers) == (0, 0, 0, 1)
    assert await status(s, queue, job_id) == "active"
    assert await s.ack_many(queue, [(job_id, second.token, "")]) == [True]


async def test_the_dead_worker_coming_back_is_fenced(clocked_store: RedisStore, queue: str, clock: TestClock) -> None:
    s, k = clocked_store, clocked_store.keys(queue)
    job_id = await put(s, queue)
    await beat(s, "w1", queue)
    (stalled,) = (await s.dequeue(queue, 1, "w1")).jobs
    clock.advance(7)
    assert (await s.release_lapsed(queue, LAPSE_MS)).requeued == 1
    await beat(s, "w2", queue)
    (taken,) = (await s.dequeue(queue, 1, "w2")).jobs
    # w1 wakes up (a long pause, not a crash), beats again and tries to finish its run: every write is refused.
    await beat(s, "w1", queue)
    assert await s.ack_many(queue, [(job_id, stalled.token, '{"by": "w1"}')]) == [False]
    assert await s.extend(queue, [(job_id, stalled.token)]) == [job_id]
    stats = await s.redis.hgetall(k.stats)
    assert stats["stale_acks"] == "1" and stats["stale_extends"] == "1"
    assert await status(s, queue, job_id) == "active" and await s.redis.hget(k.job(job_id), "worker") == "w2"
    assert await s.ack_many(queue, [(job_id, taken.token, '{"by": "w2"}')]) == [True]
    assert codec.loads(await s.redis.hget(k.job(job_id), "result")) == {"by": "w2"}


async def test_graceful_deregister_removes_the_beat(clocked_store: RedisStore, queue: str) -> None:
    s, k = clocked_store, clocked_store.keys(queue)
    await beat(s, "w1", queue)
    await s.workers.beat("w2", [queue], 123)
    assert await s.redis.zrange(k.beats, 0, -1, withscores=True) == [("w2", 123.0), ("w1", float(s.clock_arg()))]
    await s.workers.deregister("w1", [queue])
    assert await s.redis.zrange(k.beats, 0, -1) == ["w2"]


async def test_more_leases_than_the_limit_are_released_over_several_calls(
    redis_url: str, queue: str, clock: TestClock, clocked_store: RedisStore
) -> None:
    s = RedisStore(clocked_store.redis, StoreConfig(lease_ms=10_000, reap_limit=2), now=clock)
    for _ in range(3):
        await put(s, queue)
    await beat(s, "w1", queue)
    assert len((await s.dequeue(queue, 3, "w1")).jobs) == 3
    clock.advance(7)
    first = await s.release_lapsed(queue, LAPSE_MS)
    assert (first.requeued, first.workers, first.next_check_ms) == (2, 0, clock.now)  # w1 kept for the rest
    second = await s.release_lapsed(queue, LAPSE_MS)
    assert (second.requeued, second.workers, second.next_check_ms) == (1, 1, None)


def test_lapse_must_exceed_the_heartbeat() -> None:
    with pytest.raises(ValueError, match=r"worker_lapse_seconds .* must be greater than heartbeat_seconds"):
        Settings(heartbeat_seconds=3, worker_lapse_seconds=3)
    assert Settings(heartbeat_seconds=10, worker_lapse_seconds=0).worker_lapse_seconds == 0
    assert (Settings().heartbeat_seconds, Settings().worker_lapse_seconds) == (2.0, 6.0)
