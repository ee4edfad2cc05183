"""One enqueue script call takes a chunk of jobs: priorities, due times, queues and idempotency keys in one
batch behave exactly as the same jobs enqueued one by one."""

from __future__ import annotations

import uuid

import pytest

from tickr.core.errors import IdempotencyConflict
from tickr.core.factory import new_job
from tickr.store.store import ENQUEUE_CHUNK, RedisStore


async def test_a_mixed_batch_lands_in_its_lists_in_order(store: RedisStore, queue: str) -> None:
    now = await store.server_time_ms()
    jobs = [
        (new_job("noop", {"i": 0}, queue=queue, priority="low"), None),
        (new_job("noop", {"i": 1}, queue=queue), None),
        (new_job("noop", {"i": 2}, queue=queue, priority="critical"), None),
        (new_job("noop", {"i": 3}, queue=queue), now + 60_000),
        (new_job("noop", {"i": 4}, queue=queue), None),
    ]
    results = await store.enqueue_many(jobs)
    assert [r.id for r in results] == [job.id for job, _ in jobs]
    assert [r.status for r in results] == ["queued", "queued", "queued", "scheduled", "queued"]
    k = store.keys(queue)
    assert await store.redis.lrange(k.ready("default"), 0, -1) == [jobs[1][0].id, jobs[4][0].id]
    assert await store.redis.lrange(k.ready("low"), 0, -1) == [jobs[0][0].id]
    assert await store.redis.lrange(k.ready("critical"), 0, -1) == [jobs[2][0].id]
    assert await store.redis.zscore(k.scheduled, jobs[3][0].id) == now + 60_000
    stats = await store.redis.hget(k.stats, "enqueued")
    assert stats == "5"
    batch = await store.dequeue(queue, 10, "w-" + uuid.uuid4().hex[:6])
    assert {j.job.payload["i"] for j in batch.jobs} == {0, 1, 2, 4}
    assert batch.jobs[0].job.payload == {"i": 2}, "critical first"


async def test_many_chunks_and_queues_keep_the_callers_order(store: RedisStore, queue: str) -> None:
    other = queue + "-b"
    jobs = [(new_job("noop", {"i": i}, queue=queue if i % 3 else other), None) for i in range(ENQUEUE_CHUNK * 2 + 7)]
    results = await store.enqueue_many(jobs)
    assert [r.id for r in results] == [job.id for job, _ in jobs]
    assert all(r.created for r in results)
    in_queue = sum(1 for job, _ in jobs if job.queue == queue)
    assert await store.redis.llen(store.keys(queue).ready("default")) == in_queue
    assert await store.redis.llen(store.keys(other).ready("default")) == len(jobs) - in_queue
    for key in [k async for k in store.redis.scan_iter(match=f"tickr:{{{other}}}:*")]:
        await store.redis.delete(key)


async def test_one_idempotency_key_twice_in_a_batch_makes_one_job(store: RedisStore, queue: str) -> None:
    first = new_job("noop", {"a": 1}, queue=queue, idempotency_key="twice")
    same = new_job("noop", {"a": 1}, queue=queue, idempotency_key="twice")
    results = await store.enqueue_many([(first, None), (same, None)])
    assert [r.created for r in results] == [True, False]
    assert results[1].id == first.id
    assert await store.redis.llen(store.keys(queue).ready("default")) == 1


async def test_a_conflict_in_a_batch_writes_the_others(store: RedisStore, queue: str) -> None:
    first = new_job("noop", {"a": 1}, queue=queue, idempotency_key="k1")
    clash = new_job("noop", {"a": 2}, queue=queue, idempotency_key="k1")
    plain = new_job("noop", {}, queue=queue)
    with pytest.raises(IdempotencyConflict) as caught:
        await store.enqueue_many([(first, None), (clash, None), (plain, None)])
    assert caught.value.indexes == [1]
    assert set(caught.value.created) == {first.id, plain.id}
    assert not await store.redis.exists(store.keys(queue).job(clash.id))


async def test_a_chunk_sent_again_finds_its_own_jobs(store: RedisStore, queue: str) -> None:
    """What the lane's one resend after a lost reply does: the same call twice creates nothing the second time."""
    jobs = [(new_job("noop", {"i": i}, queue=queue), None) for i in range(5)]
    await store.enqueue_many(jobs)
    again = await store.enqueue_many(jobs)
    assert [r.created for r in again] == [False] * 5
    assert [r.id for r in again] == [job.id for job, _ in jobs]
    assert await store.redis.llen(store.keys(queue).ready("default")) == 5
