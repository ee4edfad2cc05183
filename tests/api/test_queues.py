"""Queue routes: counts, pause/resume, dead-letter queue list/replay/purge, totals, workers."""

from __future__ import annotations

import uuid

import httpx

from tests.api.conftest import make_dead, problem_fields
from tickr.core.job import JobError
from tickr.store.keys import workers_registry
from tickr.store.store import RedisStore
from tickr.worker.heartbeat import Heartbeat

JOBS = "/api/v1/jobs"
QUEUES = "/api/v1/queues"


async def test_queue_info_counts_by_state(client: httpx.AsyncClient, store: RedisStore, queue: str) -> None:
    await make_dead(store, queue)
    for priority in ("critical", "high", "high", "low"):
        await client.post(JOBS, json={"type": "noop", "queue": queue, "priority": priority})
    await client.post(JOBS, json={"type": "noop", "queue": queue, "delay": 300})
    leased = await store.dequeue(queue, 1, "w")
    by_priority = {"critical": 1, "high": 2, "default": 0, "low": 1}
    by_priority[leased.jobs[0].job.priority] -= 1

    r = await client.get(f"{QUEUES}/{queue}")
    assert r.status_code == 200, r.text
    info = r.json()
    assert info["name"] == queue
    assert info["paused"] is False
    assert info["counts"] == {"queued": 3, "scheduled": 1, "retrying": 0, "active": 1, "dead": 1, "done": 0}
    assert info["queued_by_priority"] == by_priority
    assert info["counters"]["enqueued"] == 6
    assert info["counters"]["dead"] == 1
    assert info["counters"]["dequeued"] == 2
    assert info["oldest_waiting_seconds"] is not None and info["oldest_waiting_seconds"] >= 0
    assert info["throughput_per_second"] == 0

    listed = [q for q in (await client.get(QUEUES)).json()["queues"] if q["name"] == queue]
    assert len(listed) == 1
    assert listed[0]["counts"] == info["counts"]


async def test_throughput_counts_jobs_finished_in_the_last_minute(
    client: httpx.AsyncClient, store: RedisStore, queue: str
) -> None:
    for _ in range(3):
        await client.post(JOBS, json={"type": "noop", "queue": queue})
    leased = await store.dequeue(queue, 3, "w")
    await store.ack_many(queue, [(j.job.id, j.token, "") for j in leased.jobs])
    info = (await client.get(f"{QUEUES}/{queue}")).json()
    assert info["finished_last_minute"] == 3
    assert info["throughput_per_second"] == 0.05
    assert info["counts"]["done"] == 3
    assert info["counters"]["succeeded"] == 3


async def test_unknown_or_invalid_queue(client: httpx.AsyncClient) -> None:
    r = await client.get(f"{QUEUES}/never-used-{uuid.uuid4().hex}")
    assert r.status_code == 404
    assert r.json()["type"].endswith("queue-not-found")
    assert set(problem_fields(await client.get(f"{QUEUES}/bad:name"))) == {"queue"}


async def test_pause_and_resume(client: httpx.AsyncClient, store: RedisStore, queue: str) -> None:
    job = (await client.post(JOBS, json={"type": "noop", "queue": queue})).json()
    r = await client.post(f"{QUEUES}/{queue}/pause")
    assert r.status_code == 200
    assert r.json()["paused"] is True
    assert (await client.get(f"{QUEUES}/{queue}")).json()["paused"] is True
    assert (await store.dequeue(queue, 10, "w")).jobs == []
    # enqueueing goes on while paused
    assert (await client.post(JOBS, json={"type": "noop", "queue": queue})).status_code == 201

    await store.wait_for_marker(queue, 0.1)  # take the enqueue's wake-up marker
    r = await client.post(f"{QUEUES}/{queue}/resume")
    assert r.json()["paused"] is False
    assert r.json()["counts"]["queued"] == 2
    assert await store.wait_for_marker(queue, 0.5) is not None  # resume wakes a worker
    leased = await store.dequeue(queue, 10, "w")
    assert leased.jobs[0].job.id == job["id"]


async def test_pause_registers_a_new_queue(client: httpx.AsyncClient, queue: str) -> None:
    assert (await client.post(f"{QUEUES}/{queue}/pause")).status_code == 200
    assert (await client.get(f"{QUEUES}/{queue}")).json()["paused"] is True


async def test_dead_letter_list_and_replay_all(client: httpx.AsyncClient, store: RedisStore, queue: str) -> None:
    ids = [await make_dead(store, queue, message=f"m{i}") for i in range(3)]
    r = await client.get(f"{QUEUES}/{queue}/dead", params={"limit": 2})
    page = r.json()
    assert [job["id"] for job in page["jobs"]] == ids[::-1][:2]  # most recent death first
    rest = (await client.get(f"{QUEUES}/{queue}/dead", params={"cursor": page["next_cursor"]})).json()
    assert [job["id"] for job in rest["jobs"]] == ids[:1]
    assert rest["next_cursor"] is None

    r = await client.post(f"{QUEUES}/{queue}/dead/retry")
    assert r.status_code == 200, r.text
    assert r.json() == {"count": 3}
    info = (await client.get(f"{QUEUES}/{queue}")).json()
    assert (info["counts"]["dead"], info["counts"]["queued"], info["counters"]["replayed"]) == (0, 3, 3)


async def test_dead_letter_replay_by_type_and_ids(client: httpx.AsyncClient, store: RedisStore, queue: str) -> None:
    a = await make_dead(store, queue, job_type="email")
    b = await make_dead(store, queue, job_type="email")
    c = await make_dead(store, queue, job_type="report")
    d = await make_dead(store, queue, job_type="report")
    r = await client.post(f"{QUEUES}/{queue}/dead/retry", json={"type": "email"})
    assert r.json() == {"count": 2}
    r = await client.post(f"{QUEUES}/{queue}/dead/retry", json={"ids": [c, a, "no-such-id"]})
    assert r.json() == {"count": 1}  # a was replayed already; the unknown id is skipped
    remaining = (await client.get(f"{QUEUES}/{queue}/dead")).json()["jobs"]
    assert [job["id"] for job in remaining] == [d]
    assert (await client.get(f"{JOBS}/{b}")).json()["status"] == "queued"
    assert set(problem_fields(await client.post(f"{QUEUES}/{queue}/dead/retry", json={"typ": "x"}))) == {"typ"}


async def test_dead_letter_purge(client: httpx.AsyncClient, store: RedisStore, queue: str) -> None:
    job = await make_dead(store, queue, job_type="email")
    await make_dead(store, queue, job_type="report")
    await make_dead(store, queue, job_type="report")
    r = await client.delete(f"{QUEUES}/{queue}/dead", params={"type": "email"})
    assert r.json() == {"count": 1}
    assert (await client.get(f"{JOBS}/{job}")).status_code == 404
    r = await client.delete(f"{QUEUES}/{queue}/dead")
    assert r.json() == {"count": 2}
    assert (await client.get(f"{QUEUES}/{queue}")).json()["counts"]["dead"] == 0
    assert (await client.get(f"{QUEUES}/{queue}/dead")).json() == {"jobs": [], "next_cursor": None}


async def test_purge_forgets_idempotency_keys(client: httpx.AsyncClient, store: RedisStore, queue: str) -> None:
    body = {"type": "noop", "queue": queue, "idempotency_key": "k-1"}
    first = (await client.post(JOBS, json=body)).json()
    leased = await store.dequeue(queue, 1, "w")
    await store.fail(queue, first["id"], leased.jobs[0].token, JobError("E", "x"), delay_ms=0, permanent=True)
    assert (await client.delete(f"{QUEUES}/{queue}/dead")).json() == {"count": 1}
    again = await client.post(JOBS, json=body)
    assert again.status_code == 201
    assert again.json()["id"] != first["id"]


async def test_queue_stats_totals(client: httpx.AsyncClient, store: RedisStore, queue: str) -> None:
    await make_dead(store, queue)
    await client.post(JOBS, json={"type": "noop", "queue": queue})
    await client.post(JOBS, json={"type": "noop", "queue": queue, "delay": 60})
    r = await client.get("/queue/stats")
    assert r.status_code == 200
    stats = r.json()["queue_stats"]
    assert set(stats) == {"ready", "processing", "completed", "retrying", "dead", "scheduled"}
    assert all(isinstance(v, int) and v >= 0 for v in stats.values())
    assert stats["ready"] >= 1 and stats["dead"] >= 1 and stats["scheduled"] >= 1


async def test_retrying_jobs_are_counted(client: httpx.AsyncClient, store: RedisStore, queue: str) -> None:
    job = (await client.post(JOBS, json={"type": "noop", "queue": queue})).json()
    leased = await store.dequeue(queue, 1, "w")
    outcome = await store.fail(queue, job["id"], leased.jobs[0].token, JobError("E", "x"), delay_ms=60_000)
    assert outcome.kind == "retrying"
    info = (await client.get(f"{QUEUES}/{queue}")).json()
    assert (info["counts"]["scheduled"], info["counts"]["retrying"]) == (1, 1)
    listed = (await client.get(JOBS, params={"queue": queue, "status": "retrying"})).json()["jobs"]
    assert [j["id"] for j in listed] == [job["id"]]
    assert listed[0]["last_error"]["type"] == "E"


async def test_workers_listing(client: httpx.AsyncClient, store: RedisStore) -> None:
    worker_id = f"test-worker-{uuid.uuid4().hex[:8]}"
    beat = Heartbeat(store, worker_id, ["q1", "q2"], 8, lambda: {}, lambda q, j: None, interval=5.0)
    await beat.register()
    ghost = f"ghost-{uuid.uuid4().hex[:8]}"
    await store.redis.zadd(workers_registry(), {ghost: 1})  # registry entry whose info hash expired
    try:
        workers = (await client.get("/api/v1/workers")).json()["workers"]
        mine = [w for w in workers if w["id"] == worker_id]
        assert len(mine) == 1
        assert (mine[0]["queues"], mine[0]["concurrency"], mine[0]["in_flight"]) == (["q1", "q2"], 8, 0)
        assert mine[0]["last_heartbeat"].endswith("Z")
        assert ghost not in {w["id"] for w in workers}
    finally:
        await beat.deregister()
        await store.redis.zrem(workers_registry(), ghost)
