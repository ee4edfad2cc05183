"""The store on a real 3-primary cluster: queues spread over the primaries, every transition, cross-queue reads
that fan out per node, and WAIT for a replica after each state change (``min_replicas=1``)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from tests.cluster.servers import Cluster
from tests.waiting import wait_until
from tickr.app import App
from tickr.config import Settings
from tickr.core.errors import ReplicationShortfall
from tickr.core.factory import new_job
from tickr.core.job import JobError, JobState
from tickr.store.connection import connect, is_cluster, parse_redis_url
from tickr.store.store import RedisStore, StoreConfig


def names(n: int) -> list[str]:
    return [f"c-{uuid.uuid4().hex[:10]}" for _ in range(n)]


def test_the_url_forms_parse() -> None:
    assert parse_redis_url("redis+cluster://a:1,b:2").nodes == (("a", 1), ("b", 2))
    assert parse_redis_url("redis://a:1", cluster=True).kind == "cluster"
    assert parse_redis_url("redis://a:1").kind == "server"
    s = parse_redis_url("redis+sentinel://:pw@h1:1,h2/mymaster?sentinel_password=sp")
    assert (s.kind, s.service, s.nodes) == ("sentinel", "mymaster", (("h1", 1), ("h2", 26379)))
    assert s.options == {"password": "pw", "sentinel_password": "sp"}
    with pytest.raises(ValueError, match="names its primary"):
        parse_redis_url("redis+sentinel://h:1")


async def test_ten_queues_land_on_more_than_one_primary(real_cluster: Cluster, cstore: RedisStore) -> None:
    assert is_cluster(cstore.redis) and cstore.lane is None
    queues = names(10)
    owners = {q: real_cluster.owner(cstore.keys(q).stats) for q in queues}
    # every key of a queue shares its slot: one owner per queue
    assert all(real_cluster.owner(cstore.keys(q).marker) == owners[q] for q in queues)
    assert len(set(owners.values())) > 1, owners
    assert set(owners.values()) <= set(real_cluster.primary_ports())


async def test_every_transition_on_the_cluster(cstore: RedisStore) -> None:
    s = cstore
    q = names(1)[0]
    ids = [(await s.enqueue(new_job("noop", {"i": i}, queue=q, max_retries=1))).id for i in range(4)]
    again = await s.enqueue(new_job("noop", {}, queue=q, idempotency_key="k"))
    assert not (await s.enqueue(new_job("noop", {}, queue=q, idempotency_key="k"))).created
    batch = await s.dequeue(q, 3, "w")
    leases = [(j.job.id, j.token) for j in batch.jobs]
    assert await s.extend(q, leases) == []
    assert await s.ack_many(q, [(*leases[0], '"ok"')]) == [True]
    retry = await s.fail(q, leases[1][0], leases[1][1], JobError("E", "x"), delay_ms=0)
    assert retry.kind == "retrying"
    dead = await s.fail(q, leases[2][0], leases[2][1], JobError("E", "x"), delay_ms=0, permanent=True)
    assert dead.kind == "dead"
    assert await s.jobs.replay(leases[2][0]) == "queued"
    assert await s.jobs.cancel(again.id) == "cancelled"
    await s.promote(q)
    leased = await s.dequeue(q, 10, "w", lease_ms=1)
    await asyncio.sleep(0.05)
    reaped = await s.reap(q)
    assert reaped.requeued + reaped.dead == len(leased.jobs) > 0
    while batch := await s.dequeue(q, 10, "w"):
        if not batch.jobs:
            break
        await s.ack_many(q, [(j.job.id, j.token, "") for j in batch.jobs])
    final = [(await s.jobs.get_job(job_id)).status for job_id in ids]
    assert set(final) <= {JobState.SUCCEEDED, JobState.DEAD} and JobState.SUCCEEDED in final


async def test_cross_queue_reads_fan_out_over_the_nodes(real_cluster: Cluster, cstore: RedisStore) -> None:
    s = cstore
    queues = names(10)
    assert len({real_cluster.owner(s.keys(q).stats) for q in queues}) > 1
    made = await s.enqueue_many([(new_job("noop", {"i": i}, queue=q), None) for i, q in enumerate(queues * 3)])
    assert len(made) == 30
    await s.queues.dead_replay(queues[0])  # (scripts side by side on a cluster)
    await s.workers.register("w-fan", queues, 4, 0, 30, {"noop": {}})
    stats = {st.name: st for st in await s.queues.stats(queues)}
    assert all(stats[q].queued == 3 for q in queues)
    assert not await s.queues.drained(queues)
    assert set(queues) <= set(await s.queues.names())
    page = await s.jobs.list_jobs(limit=200)
    assert {r.id for r in made} <= {j.id for j in page.jobs}
    assert (await s.jobs.get_job(made[-1].id)).queue == queues[-1]  # located across the nodes
    gauges = {g.queue: g for g in (await s.metrics.snapshot()).queues}
    assert all(gauges[q].ready["default"] == 3 and gauges[q].workers == 1 for q in queues)
    assert "w-fan" in {w.id for w in await s.workers.live()}
    streams = [st for st in await s.events.streams() if st.queue in queues]
    await s.events.ensure_groups(streams)
    events = await s.events.read("c1", streams, count=100, block_ms=100)
    assert {e.queue for e in events} == set(queues)
    assert sum(st.pending for st in await s.events.status(streams)) == len({(e.queue, e.entry_id) for e in events})
    assert (await s.events.lag()).sinks
    assert await s.queues.delete(queues[0]) > 0


async def test_min_replicas_beyond_the_replicas_is_an_error(real_cluster: Cluster) -> None:
    client = connect(real_cluster.url)
    store = RedisStore(client, StoreConfig(min_replicas=2, min_replicas_timeout_ms=50))
    try:
        with pytest.raises(ReplicationShortfall, match="1 of 2"):
            await store.enqueue(new_job("noop", {}, queue=names(1)[0]))
        assert await store.metrics.snapshot()  # read-only scripts skip WAIT
    finally:
        await client.aclose()


async def test_the_script_and_its_wait_reach_the_replica(real_cluster: Cluster, cstore: RedisStore) -> None:
    q = names(1)[0]
    made = await cstore.enqueue(new_job("noop", {}, queue=q))
    primary = real_cluster.owner(cstore.keys(q).stats)
    client = real_cluster.replica_of(primary).client()
    try:
        client.execute_command("READONLY")
        # WAIT returned 1 before enqueue did: the replica has the job already
        assert client.exists(cstore.keys(q).job(made.id)) == 1
    finally:
        client.close()

    async def listed() -> bool:
        return made.id in {j.id for j in (await cstore.jobs.list_jobs(queue=q)).jobs}

    await wait_until(listed, timeout=5, message="the job listed")


async def test_a_redis_url_with_the_cluster_setting_is_a_cluster(real_cluster: Cluster, tmp_path: Path) -> None:
    seed = f"redis://127.0.0.1:{real_cluster.ports[-1]}"  # any node seeds the slot map, a replica too
    app = App(settings=Settings(redis_url=seed, redis_cluster=True, data_dir=tmp_path))
    try:
        assert is_cluster(app.store.redis)
        queues = names(4)
        ids = [await app.enqueue("noop", {}, queue=q) for q in queues]
        assert [
            j.queue if j else None for j in await app.store.jobs.get_jobs(list(zip(queues, ids, strict=True)))
        ] == queues
    finally:
        await app.close()
