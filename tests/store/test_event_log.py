"""The event streams: what each transition writes, the cap that never drops unread events silently, the group."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest

from tickr.core.factory import new_job
from tickr.core.job import JobError
from tickr.store.connection import connect
from tickr.store.store import RedisStore, StoreConfig


async def put(store: RedisStore, queue: str, **kw: object) -> str:
    return (await store.enqueue(new_job("noop", {}, queue=queue, **kw))).id  # type: ignore[arg-type]


async def entries(store: RedisStore, queue: str) -> list[dict[str, str]]:
    return [fields for _, fields in await store.redis.xrange(store.keys(queue).events)]


@pytest.fixture
async def capped(redis_url: str) -> AsyncIterator[RedisStore]:
    """A store whose streams are capped at 100 events."""
    client = connect(redis_url)
    yield RedisStore(client, StoreConfig(events_maxlen=100))
    await client.aclose()


async def test_a_run_writes_queued_active_and_succeeded_with_what_history_needs(store: RedisStore, queue: str) -> None:
    job_id = await put(store, queue)
    leased = (await store.dequeue(queue, 1, "w-1")).jobs[0]
    await store.ack_many(queue, [(job_id, leased.token, "")])
    queued, active, succeeded = await entries(store, queue)
    assert queued == {"e": "queued", "id": job_id}
    created = int(await store.redis.hget(store.keys(queue).job(job_id), "created_at"))
    lease = leased.token
    assert active == {
        "e": "active",
        "*id": job_id,
        "worker": "w-1",
        "*attempt": "1",
        "*due": str(created),
        "*lease": lease,
    }
    started = await store.redis.hget(store.keys(queue).job(job_id), "started_at")
    assert succeeded == {
        "e": "succeeded",
        "*id": job_id,
        "*attempt": "1",
        "*started": started,
        "worker": "w-1",
        "*lease": lease,
    }


async def test_a_dequeue_and_an_ack_of_many_jobs_are_one_entry_each_expanded_per_job(
    store: RedisStore, queue: str
) -> None:
    ids = [await put(store, queue) for _ in range(3)]
    leased = (await store.dequeue(queue, 3, "w-1")).jobs
    await store.ack_many(queue, [(j.job.id, j.token, "") for j in leased])
    assert len(await entries(store, queue)) == 3 + 1 + 1
    stream = store.events.stream(queue)
    await store.events.ensure_groups([stream])
    events = await store.events.read("sink", [stream], count=100, block_ms=None)
    by_kind = {kind: [e for e in events if e.event == kind] for kind in ("queued", "active", "succeeded")}
    assert [e.subject for e in by_kind["active"]] == [j.job.id for j in leased]
    assert sorted(e.subject for e in by_kind["succeeded"]) == sorted(ids)
    assert {e.fields["attempt"] for e in by_kind["succeeded"]} == {"1"}
    assert len({e.entry_id for e in by_kind["active"]}) == 1, "one entry for the batch"


async def test_a_failed_attempt_carries_its_error(store: RedisStore, queue: str) -> None:
    job_id = await put(store, queue, max_retries=0)
    leased = (await store.dequeue(queue, 1, "w-1")).jobs[0]
    await store.fail(queue, job_id, leased.token, JobError("ValueError", "bad", "Traceback ..."), delay_ms=0)
    dead = (await entries(store, queue))[-1]
    assert dead["e"] == "dead" and dead["attempt"] == "1" and dead["worker"] == "w-1"
    assert orjson.loads(dead["error"]) == {"type": "ValueError", "message": "bad", "traceback": "Traceback ..."}


async def test_history_off_writes_no_events(redis_url: str, queue: str) -> None:
    client = connect(redis_url)
    store = RedisStore(client, StoreConfig(events_maxlen=0))
    try:
        job_id = await put(store, queue)
        leased = (await store.dequeue(queue, 1, "w")).jobs[0]
        await store.ack_many(queue, [(job_id, leased.token, "")])
        assert await store.redis.exists(store.keys(queue).events) == 0
    finally:
        await client.aclose()


async def test_without_a_reader_the_cap_drops_the_oldest_and_counts_exactly(capped: RedisStore, queue: str) -> None:
    for _ in range(250):
        await put(capped, queue)
    k = capped.keys(queue)
    length = await capped.redis.xlen(k.events)
    dropped = int(await capped.redis.hget(k.stats, "events_dropped"))
    assert length <= 100
    assert length + dropped == 250, "every event is either in the stream or counted as dropped"


async def test_acknowledged_events_are_trimmed_and_unread_ones_kept(capped: RedisStore, queue: str) -> None:
    events = capped.events
    stream = events.stream(queue)
    await events.ensure_groups([stream])
    for _ in range(60):
        await put(capped, queue)
    read = await events.read("sink-a", [stream], count=1000, block_ms=None)
    assert len(read) == 60
    await events.ack(stream, [e.entry_id for e in read])
    assert await capped.redis.xlen(stream.key) <= 1, "acknowledged by the only group: trimmed"
    for _ in range(90):  # 90 more: under the cap once the acknowledged ones went
        await put(capped, queue)
    assert await capped.redis.hget(stream.stats, "events_dropped") is None
    assert len(await events.read("sink-a", [stream], count=1000, block_ms=None)) == 90


async def test_pending_events_are_never_trimmed_as_acknowledged(capped: RedisStore, queue: str) -> None:
    events = capped.events
    stream = events.stream(queue)
    await events.ensure_groups([stream])
    for _ in range(50):
        await put(capped, queue)
    first = await events.read("sink-a", [stream], count=20, block_ms=None)  # read, never acknowledged
    rest = await events.read("sink-b", [stream], count=1000, block_ms=None)
    await events.ack(stream, [e.entry_id for e in rest])
    remaining = [entry_id for entry_id, _ in await capped.redis.xrange(stream.key)]
    assert [e.entry_id for e in first] == remaining[:20], "sink-a's pending entries stay"


async def test_status_reports_the_oldest_uncommitted_event_and_a_second_sink_claims_a_dead_ones(
    store: RedisStore, queue: str
) -> None:
    events = store.events
    stream = events.stream(queue)
    [before] = await events.status([stream])
    assert before.length == 0 and before.oldest_uncommitted_ms is None
    await events.ensure_groups([stream])
    for _ in range(5):
        await put(store, queue)
    [unread] = await events.status([stream])
    assert unread.length == 5 and unread.pending == 0 and unread.oldest_uncommitted_ms is not None
    taken = await events.read("dead-sink", [stream], count=1000, block_ms=None)
    [pending] = await events.status([stream])
    assert pending.pending == 5 and pending.oldest_uncommitted_ms == taken[0].at_ms
    claimed = await events.claim("live-sink", stream, min_idle_ms=0, count=100)
    assert [e.entry_id for e in claimed] == [e.entry_id for e in taken]
    await events.ack(stream, [e.entry_id for e in claimed])
    [done] = await events.status([stream])
    assert done.pending == 0 and done.oldest_uncommitted_ms is None
    assert await events.forget_idle_consumers(stream, idle_ms=0) == 2
