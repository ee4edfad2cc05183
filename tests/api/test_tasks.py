"""GET /api/v1/tasks: the task types workers registered, their defaults, and the live workers that run them."""

from __future__ import annotations

import uuid

import httpx

from tickr.store.store import RedisStore


async def test_registered_types_with_their_defaults_and_workers(
    client: httpx.AsyncClient, store: RedisStore, queue: str
) -> None:
    worker, name = f"w-{uuid.uuid4().hex[:8]}", f"emails.send.{uuid.uuid4().hex[:6]}"
    defaults = {"queue": queue, "priority": "high", "max_retries": 5, "backoff": {"base": 2.0}, "timeout": None}
    await store.workers.register(worker, [queue], concurrency=8, in_flight=0, ttl_seconds=30, tasks={name: defaults})
    try:
        r = await client.get("/api/v1/tasks")
        assert r.status_code == 200, r.text
        task = next(t for t in r.json()["tasks"] if t["type"] == name)
        assert task == {"type": name, "defaults": defaults, "workers": [worker], "queues": [queue]}
        workers = (await client.get("/api/v1/workers")).json()["workers"]
        assert next(w for w in workers if w["id"] == worker)["types"] == [name]
    finally:
        await store.workers.deregister(worker, [queue])
    gone = next(t for t in (await client.get("/api/v1/tasks")).json()["tasks"] if t["type"] == name)
    assert gone["workers"] == [] and gone["defaults"] == defaults  # known, but nobody runs it now
    await store.redis.hdel("tickr:tasks", name)
