"""Every Lua script against a real Redis, with an injected clock so each test is deterministic."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from tests.conftest import TestClock
from tests.waiting import wait_until
from tickr.core.factory import new_job
from tickr.core.job import JobError
from tickr.store import codec
from tickr.store.connection import connect
from tickr.store.job_admin import JobAdmin
from tickr.store.store import RedisStore, StoreConfig


async def put(store: RedisStore, queue: str, *, due_ms: int | None = None, **kw: object) -> str:
    job = new_job(str(kw.pop("type", "noop")), dict(kw.pop("payload", {})), queue=queue, **kw)  # type: ignore[arg-type]
    return (await store.enqueue(job, due_ms)).id


async def status(store: RedisStore, queue: str, job_id: str) -> str:
    return str(await store.redis.hget(store.keys(queue).job(job_id), "status"))


async def test_enqueue_now_is_ready_and_wakes(clocked_store: RedisStore, queue: str, clock: TestClock) -> None:
    job_id = await put(clocked_store, queue, payload={"x": 1})
    k = clocked_store.keys(queue)
    assert await clocked_store.redis.lrange(k.ready("default"), 0, -1) == [job_id]
    assert await clocked_store.redis.zscore(k.marker, "m") == clock.now
    data = await clocked_store.redis.hgetall(k.job(job_id))
    assert data["status"] == "queued" and data["created_at"] == str(clock.now)
    assert codec.loads(data["payload"]) == {"x": 1}
    assert await clocked_store.redis.sismember("tickr:queues", queue)


async def test_delayed_job_is_scheduled_then_promoted(clocked_store: RedisStore, queue: str, clock: TestClock) -> None:
    job_id = await put(clocked_store, queue, due_ms=clock.now + 2000)
    k = clocked_store.keys(queue)
    assert await status(clocked_store, queue, job_id) == "scheduled"
    assert await clocked_store.redis.zscore(k.marker, "m") == clock.now + 2000
    early = await clocked_store.dequeue(queue, 10, "w")
    assert early.jobs == [] and early.next_due_ms == clock.now + 2000
    clock.advance(2)
    due = await clocked_store.dequeue(queue, 10, "w")
    assert [j.job.id for j in due.jobs] == [job_id] and due.next_due_ms is None


async def test_promote_moves_only_due_jobs(clocked_store: RedisStore, queue: str, clock: TestClock) -> None:
    first = await put(clocked_store, queue, due_ms=clock.now + 1000, priority="high")
    await put(clocked_store, queue, due_ms=clock.now + 5000)
    clock.advance(1)
    moved, next_due = await clocked_store.promote(queue)
    assert moved == 1 and next_due == clock.now + 4000
    assert await clocked_store.redis.lrange(clocked_store.keys(queue).ready("high"), 0, -1) == [first]
    assert await status(clocked_store, queue, first) == "queued"


async def test_idempotency_key_returns_first_job(clocked_store: RedisStore, queue: str) -> None:
    a = await clocked_store.enqueue(new_job("noop", {}, queue=queue, idempotency_key="k"))
    b = await clocked_store.enqueue(new_job("noop", {}, queue=queue, idempotency_key="k"))
    assert a.created and not b.created and b.id == a.id
    assert await clocked_store.redis.llen(clocked_store.keys(queue).ready("default")) == 1


async def test_idempotency_under_200_concurrent_enqueues(store: RedisStore, queue: str) -> None:
    results = await asyncio.gather(
        *(store.enqueue(new_job("noop", {"n": 1}, queue=queue, idempotency_key="same")) for _ in range(200))
    )
    assert sum(r.created for r in results) == 1
    assert len({r.id for r in results}) == 1
    assert await store.redis.llen(store.keys(queue).ready("default")) == 1


async def test_dequeue_leases_with_tokens_and_attempts(clocked_store: RedisStore, queue: str, clock: TestClock) -> None:
    ids = [await put(clocked_store, queue) for _ in range(5)]
    batch = await clocked_store.dequeue(queue, 3, "w1")
    assert [j.job.id for j in batch.jobs] == ids[:3] and batch.more
    assert len({j.token for j in batch.jobs}) == 3
    assert all(j.job.attempt == 1 and j.job.status == "active" and j.job.worker == "w1" for j in batch.jobs)
    active = await clocked_store.redis.zrange(clocked_store.keys(queue).active, 0, -1, withscores=True)
    assert {(i, s) for i, s in active} == {(i, clock.now + 10_000) for i in ids[:3]}
    rest = await clocked_store.dequeue(queue, 10, "w1")
    assert [j.job.id for j in rest.jobs] == ids[3:] and not rest.more


async def test_weighted_priorities_never_starve_low(clocked_store: RedisStore, queue: str) -> None:
    for priority in ("critical", "high", "default", "low"):
        await clocked_store.enqueue_many(
            [(new_job("noop", {}, queue=queue, priority=priority), None) for _ in range(60)]
        )
    taken: Counter[str] = Counter()
    for _ in range(15):  # 15 single-job dequeues = one full weight cycle 8/4/2/1
        batch = await clocked_store.dequeue(queue, 1, "w")
        taken[batch.jobs[0].job.priority] += 1
    assert taken == {"critical": 8, "high": 4, "default": 2, "low": 1}
    big = await clocked_store.dequeue(queue, 30, "w")
    mix = Counter(j.job.priority for j in big.jobs)
    assert mix == {"critical": 16, "high": 8, "default": 4, "low": 2}


async def test_empty_priority_falls_back_to_others(clocked_store: RedisStore, queue: str) -> None:
    ids = [await put(clocked_store, queue, priority="low") for _ in range(4)]
    batch = await clocked_store.dequeue(queue, 10, "w")
    assert [j.job.id for j in batch.jobs] == ids


async def test_ack_only_for_current_holder(clocked_store: RedisStore, queue: str, clock: TestClock) -> None:
    await put(clocked_store, queue)
    leased = (await clocked_store.dequeue(queue, 1, "w")).jobs[0]
    assert await clocked_store.ack_many(queue, [(leased.job.id, "999", "")]) == [False]
    assert await clocked_store.ack_many(queue, [(leased.job.id, leased.token, '{"ok": true}')]) == [True]
    k = clocked_store.keys(queue)
    data = await clocked_store.redis.hgetall(k.job(leased.job.id))
    assert data["status"] == "succeeded" and codec.loads(data["result"]) == {"ok": True}
    assert await clocked_store.redis.zscore(k.done, leased.job.id) == clock.now
    assert await clocked_store.redis.zcard(k.active) == 0
    assert 0 < await clocked_store.redis.pttl(k.job(leased.job.id)) <= clocked_store.config.retention_ms
    stats = await clocked_store.redis.hgetall(k.stats)
    assert stats["succeeded"] == "1" and stats["stale_acks"] == "1"
    assert await clocked_store.ack_many(queue, [(leased.job.id, leased.token, "")]) == [False]


async def test_fail_retries_with_delay_then_dead(clocked_store: RedisStore, queue: str, clock: TestClock) -> None:
    job_id = await put(clocked_store, queue, max_retries=1, priority="high")
    leased = (await clocked_store.dequeue(queue, 1, "w")).jobs[0]
    outcome = await clocked_store.fail(queue, job_id, leased.token, JobError("E", "boom"), delay_ms=1500)
    assert outcome.kind == "retrying" and outcome.due_ms == clock.now + 1500
    assert await status(clocked_store, queue, job_id) == "retrying"
    assert (await clocked_store.dequeue(queue, 1, "w")).jobs == []
    clock.advance(1.5)
    leased = (await clocked_store.dequeue(queue, 1, "w")).jobs[0]
    assert leased.job.attempt == 2 and leased.job.last_error is not None and leased.job.last_error.message == "boom"
    outcome = await clocked_store.fail(queue, job_id, leased.token, JobError("E", "again"), delay_ms=0)
    assert outcome.kind == "dead"
    k = clocked_store.keys(queue)
    assert await clocked_store.redis.zscore(k.dead, job_id) == clock.now
    job = await JobAdmin(clocked_store).get_job(job_id)
    assert job.status == "dead" and job.priority == "high" and job.last_error and job.last_error.message == "again"


async def test_permanent_and_at_most_once_failures_skip_retries(clocked_store: RedisStore, queue: str) -> None:
    a = await put(clocked_store, queue, max_retries=5)
    b = await put(clocked_store, queue, max_retries=5, execution="at_most_once")
    la, lb = (await clocked_store.dequeue(queue, 2, "w")).jobs
    assert (
        await clocked_store.fail(queue, a, la.token, JobError("E", "x"), delay_ms=10, permanent=True)
    ).kind == "dead"
    assert (await clocked_store.fail(queue, b, lb.token, JobError("E", "x"), delay_ms=10)).kind == "dead"


async def test_stale_fail_is_refused(clocked_store: RedisStore, queue: str) -> None:
    job_id = await put(clocked_store, queue)
    await clocked_store.dequeue(queue, 1, "w")
    assert (await clocked_store.fail(queue, job_id, "nope", JobError("E", "x"), delay_ms=0)).kind == "stale"
    assert await status(clocked_store, queue, job_id) == "active"


async def test_extend_pushes_deadline_and_reports_lost(clocked_store: RedisStore, queue: str, clock: TestClock) -> None:
    job_id = await put(clocked_store, queue)
    leased = (await clocked_store.dequeue(queue, 1, "w")).jobs[0]
    clock.advance(5)
    assert await clocked_store.extend(queue, [(job_id, leased.token), ("ghost", "1")]) == ["ghost"]
    assert await clocked_store.redis.zscore(clocked_store.keys(queue).active, job_id) == clock.now + 10_000
    assert await clocked_store.extend(queue, [(job_id, "wrong")]) == [job_id]


async def test_reap_requeues_at_least_once_and_loses_at_most_once(
    clocked_store: RedisStore, queue: str, clock: TestClock
) -> None:
    alo = await put(clocked_store, queue)
    amo = await put(clocked_store, queue, execution="at_most_once")
    leases = (await clocked_store.dequeue(queue, 2, "w")).jobs
    clock.advance(5)
    assert (await clocked_store.reap(queue)).requeued == 0
    clock.advance(6)
    result = await clocked_store.reap(queue)
    assert (result.requeued, result.lost, result.dead) == (1, 1, 0)
    assert await status(clocked_store, queue, alo) == "queued"
    assert await status(clocked_store, queue, amo) == "lost"
    # the old holder can no longer complete the job
    assert await clocked_store.ack_many(queue, [(alo, leases[0].token, "")]) == [False]
    again = (await clocked_store.dequeue(queue, 5, "w2")).jobs
    assert [j.job.id for j in again] == [alo] and again[0].job.attempt == 2


async def test_poison_job_is_dead_lettered_after_max_retries_reaps(
    clocked_store: RedisStore, queue: str, clock: TestClock
) -> None:
    job_id = await put(clocked_store, queue, max_retries=2)
    for _ in range(3):
        assert [j.job.id for j in (await clocked_store.dequeue(queue, 1, "w")).jobs] == [job_id]
        clock.advance(11)
        await clocked_store.reap(queue)
    job = await JobAdmin(clocked_store).get_job(job_id)
    assert job.status == "dead" and job.last_error and job.last_error.type == "LeaseExpired"
    assert (await clocked_store.dequeue(queue, 1, "w")).jobs == []


async def test_release_hands_back_without_using_an_attempt(clocked_store: RedisStore, queue: str) -> None:
    a = await put(clocked_store, queue)
    b = await put(clocked_store, queue, execution="at_most_once")
    leases = (await clocked_store.dequeue(queue, 2, "w")).jobs
    requeued, lost, stale = await clocked_store.release(queue, [(j.job.id, j.token) for j in leases] + [("x", "1")])
    assert (requeued, lost, stale) == (1, 1, 1)
    again = (await clocked_store.dequeue(queue, 5, "w")).jobs
    assert [j.job.id for j in again] == [a] and again[0].job.attempt == 1
    assert await status(clocked_store, queue, b) == "lost"


async def test_cancel_replay_update(clocked_store: RedisStore, queue: str, clock: TestClock) -> None:
    inspector = JobAdmin(clocked_store)
    queued = await put(clocked_store, queue)
    later = await put(clocked_store, queue, due_ms=clock.now + 60_000)
    assert await inspector.cancel(queued) == "cancelled"
    assert await inspector.cancel(later) == "cancelled"
    assert await clocked_store.redis.llen(clocked_store.keys(queue).ready("default")) == 0
    assert await clocked_store.redis.zcard(clocked_store.keys(queue).scheduled) == 0
    with pytest.raises(Exception, match="cannot cancel"):
        await inspector.cancel(queued)
    assert await inspector.replay(queued) == "queued"
    assert await inspector.update(queued, priority="critical", payload={"p": 2}) == "queued"
    assert await inspector.update(queued, due_ms=clock.now + 5000) == "scheduled"
    job = await inspector.get_job(queued)
    assert job.priority == "critical" and job.payload == {"p": 2} and job.scheduled_for == clock.now + 5000
    clock.advance(5)
    leased = (await clocked_store.dequeue(queue, 1, "w")).jobs[0]
    assert leased.job.id == queued and leased.job.attempt == 1
    with pytest.raises(Exception, match="cannot update"):
        await inspector.update(queued, priority="low")


async def test_paused_queue_dequeues_nothing(clocked_store: RedisStore, queue: str) -> None:
    await put(clocked_store, queue)
    await clocked_store.redis.set(clocked_store.keys(queue).paused, "1")
    assert (await clocked_store.dequeue(queue, 5, "w")).jobs == []
    await clocked_store.redis.delete(clocked_store.keys(queue).paused)
    assert len((await clocked_store.dequeue(queue, 5, "w")).jobs) == 1


async def _blocked_in_bzpopmin(store: RedisStore, client_name: str) -> bool:
    """True while a connection named ``client_name`` is blocked in BZPOPMIN on the server."""
    return any(
        c.get("name") == client_name and c.get("cmd") == "bzpopmin" and "b" in c.get("flags", "")
        for c in await store.redis.client_list()
    )


async def test_marker_wakes_a_blocked_waiter(store: RedisStore, redis_url: str, queue: str) -> None:
    name = f"waiter-{queue}"  # the waiter's own connection, to be found in CLIENT LIST
    waiting = RedisStore(connect(redis_url, client_name=name), StoreConfig())
    try:
        waiter = asyncio.create_task(waiting.wait_for_marker(queue, 5))
        await wait_until(lambda: _blocked_in_bzpopmin(store, name), timeout=5, message="the waiter to block")
        await put(store, queue)
        score = await asyncio.wait_for(waiter, 2)
        assert score is not None
        assert await store.wait_for_marker(queue, 0.05) is None
    finally:
        await waiting.close()


async def test_payload_update_keeps_a_queued_job_in_line(clocked_store: RedisStore, queue: str) -> None:
    first = await put(clocked_store, queue)
    second = await put(clocked_store, queue)
    assert await JobAdmin(clocked_store).update(first, payload={"new": True}) == "queued"
    assert await clocked_store.redis.lrange(clocked_store.keys(queue).ready("default"), 0, -1) == [first, second]
    assert (await JobAdmin(clocked_store).get_job(first)).payload == {"new": True}
