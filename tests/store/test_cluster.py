"""Every script against a one-node Valkey cluster: shebang scripts refuse cross-slot keys, so a key-layout
mistake would fail here."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.conftest import TestClock
from tickr.core.factory import new_job
from tickr.core.job import JobError
from tickr.store.connection import connect
from tickr.store.job_admin import JobAdmin
from tickr.store.store import RedisStore, StoreConfig


@pytest.fixture
async def cluster_store(cluster_url: str, clock: TestClock) -> AsyncIterator[RedisStore]:
    client = connect(cluster_url, cluster=True)
    yield RedisStore(client, StoreConfig(lease_ms=1000), now=clock)
    await client.aclose()


async def test_all_scripts_run_on_a_cluster(cluster_store: RedisStore, queue: str, clock: TestClock) -> None:
    s = cluster_store
    ids = [(await s.enqueue(new_job("noop", {"i": i}, queue=queue, idempotency_key=f"k{i}"))).id for i in range(4)]
    later = (await s.enqueue(new_job("noop", {}, queue=queue), clock.now + 500)).id
    batch = await s.dequeue(queue, 3, "w")
    assert len(batch.jobs) == 3
    leases = [(j.job.id, j.token) for j in batch.jobs]
    assert await s.extend(queue, leases) == []
    assert await s.ack_many(queue, [(*leases[0], "")]) == [True]
    assert (
        await s.fail(queue, leases[1][0], leases[1][1], JobError("E", "x"), delay_ms=0, permanent=True)
    ).kind == "dead"
    assert await s.release(queue, [leases[2]]) == (1, 0, 0)
    clock.advance(1)
    assert (await s.promote(queue))[0] == 1
    inspector = JobAdmin(s)
    assert await inspector.replay(leases[1][0]) == "queued"
    assert await inspector.update(ids[3], priority="high") == "queued"
    assert await inspector.cancel(later) == "cancelled"
    again = await s.dequeue(queue, 10, "w")
    clock.advance(5)
    assert (await s.reap(queue)).requeued == len(again.jobs)
    await s.workers.beat("w", [queue], clock.now)  # (register pipelines TIME, which cluster pipelines refuse)
    leased = await s.dequeue(queue, 10, "w")
    clock.advance(7)
    assert (await s.release_lapsed(queue, 6_000)).requeued == len(leased.jobs) > 0
