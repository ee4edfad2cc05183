"""Idempotency keys remember the request: the same request again returns the first job, a different one with
the same key is an ``IdempotencyConflict`` and writes nothing; a schedule's occurrences never conflict.

The API's 409s: ``tests/api/test_jobs.py``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import tickr
from tickr.app import App
from tickr.core.errors import IdempotencyConflict
from tickr.core.factory import new_job
from tickr.core.job import Job
from tickr.store import codec
from tickr.store.store import RedisStore


def keyed(queue: str, payload: dict[str, Any] | None = None, key: str = "k", **options: Any) -> Job:
    return new_job("noop", payload if payload is not None else {"a": 1}, queue=queue, idempotency_key=key, **options)


async def job_hashes(store: RedisStore, queue: str) -> int:
    return len([key async for key in store.redis.scan_iter(match=f"tickr:{{{queue}}}:job:*", count=1_000)])


async def test_the_same_request_returns_the_first_job(store: RedisStore, queue: str) -> None:
    first = await store.enqueue(keyed(queue, {"a": 1, "b": [1, 2]}, priority="high", name="n"))
    again = await store.enqueue(keyed(queue, {"b": [1, 2], "a": 1}, priority="high", name="n"))  # keys reordered
    later = await store.enqueue(keyed(queue, {"a": 1, "b": [1, 2]}, priority="high", name="n"), 10**13)  # due time
    assert first.created and not again.created and not later.created
    assert first.id == again.id == later.id
    assert await job_hashes(store, queue) == 1


@pytest.mark.parametrize(
    "change",
    [
        {"payload": {"a": 2}},
        {"payload": {"a": 1, "b": None}},
        {"priority": "low"},
        {"max_retries": 9},
        {"timeout": 5},
        {"execution": "at_most_once"},
        {"backoff": {"base": 3, "max": 30, "jitter": 0}},
        {"name": "other"},
        {"description": "other"},
    ],
    ids=lambda change: next(iter(change)),
)
async def test_a_different_request_with_the_key_conflicts_and_writes_nothing(
    store: RedisStore, queue: str, change: dict[str, Any]
) -> None:
    first = await store.enqueue(keyed(queue))
    payload = change.pop("payload", {"a": 1})
    other = keyed(queue, payload, **change)
    with pytest.raises(IdempotencyConflict) as caught:
        await store.enqueue(other)
    assert (caught.value.key, caught.value.job_id) == ("k", first.id)
    assert "reused with a different request" in str(caught.value)
    assert await job_hashes(store, queue) == 1
    assert await store.redis.llen(store.keys(queue).ready(other.priority)) == (1 if other.priority == "default" else 0)


async def test_keys_written_before_fingerprints_are_not_compared(store: RedisStore, queue: str) -> None:
    """An idempotency key stored by an older tickr holds the bare job id: it still returns that job."""
    await store.redis.set(store.keys(queue).idem("old"), "job-from-before", px=60_000)
    result = await store.enqueue(keyed(queue, {"anything": True}, key="old"))
    assert (result.created, result.id) == (False, "job-from-before")


async def test_a_schedule_occurrence_never_conflicts(store: RedisStore, queue: str) -> None:
    """Racing schedulers (or one that retries after an edit) may build an occurrence from different templates:
    its key names the occurrence, so the first enqueue wins and the others return it."""
    key = "schedule:s1:1800000000000"
    first = await store.enqueue(keyed(queue, {"v": 1}, key=key, schedule_id="s1"))
    second = await store.enqueue(keyed(queue, {"v": 2}, key=key, schedule_id="s1", priority="low"))
    assert first.created and not second.created and second.id == first.id


async def test_200_concurrent_enqueues_make_one_job(store: RedisStore, queue: str) -> None:
    same = await asyncio.gather(*(store.enqueue(keyed(queue, key="same")) for _ in range(200)))
    assert sum(r.created for r in same) == 1 and len({r.id for r in same}) == 1
    different = await asyncio.gather(
        *(store.enqueue(keyed(queue, {"n": i}, key="diff")) for i in range(200)), return_exceptions=True
    )
    created = [r for r in different if not isinstance(r, BaseException)]
    conflicts = [r for r in different if isinstance(r, IdempotencyConflict)]
    assert len(created) == 1 and created[0].created and len(conflicts) == 199
    assert {c.job_id for c in conflicts} == {created[0].id}
    assert await store.redis.llen(store.keys(queue).ready("default")) == 2


@pytest.mark.parametrize("lane", [True, False], ids=["lane", "pipeline"])
async def test_a_batch_writes_the_rest_then_raises_naming_the_conflicts(
    store: RedisStore, queue: str, lane: bool
) -> None:
    if not lane:
        store.lane = store._fast = None  # the path cluster and TLS clients take
    first = await store.enqueue(keyed(queue, key="taken"))
    batch = [
        (new_job("noop", {"i": 0}, queue=queue), None),
        (keyed(queue, {"other": True}, key="taken"), None),
        (keyed(queue, key="taken"), None),  # the same request: fine
        (new_job("noop", {"i": 3}, queue=queue), None),
    ]
    with pytest.raises(IdempotencyConflict) as caught:
        await store.enqueue_many(batch)
    assert (caught.value.job_id, caught.value.indexes) == (first.id, [1])
    assert caught.value.created == [batch[0][0].id, batch[3][0].id]
    assert await job_hashes(store, queue) == 3


def test_the_fingerprint_covers_the_request_not_the_job_id() -> None:
    a, b = keyed("q", {"x": [1, {"y": 2, "z": 3}]}), keyed("q", {"x": [1, {"z": 3, "y": 2}]})
    assert a.id != b.id and codec.fingerprint(a) == codec.fingerprint(b)
    assert codec.fingerprint(a) != codec.fingerprint(keyed("q", {"x": [{"y": 2, "z": 3}, 1]}))
    assert len(codec.fingerprint(a)) == 40


async def test_the_sdk_raises_idempotency_conflict(app: App, queue: str) -> None:
    first = await app.enqueue("noop", {"a": 1}, queue=queue, idempotency_key="order-7")
    assert await app.enqueue("noop", {"a": 1}, queue=queue, idempotency_key="order-7") == first
    with pytest.raises(tickr.IdempotencyConflict, match="reused with a different request"):
        await app.enqueue("noop", {"a": 2}, queue=queue, idempotency_key="order-7")
    assert issubclass(tickr.IdempotencyConflict, tickr.TickrError)
