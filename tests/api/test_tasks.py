"""GET /api/v1/tasks: the task types workers registered, their defaults, and the live workers that run them."""

from __future__ import annotations

import uuid

import httpx

from tests.api.conftest import problem_fields
from tickr.api import create_app
from tickr.config import Settings
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


async def test_a_type_no_worker_registered_gets_a_warning(client: httpx.AsyncClient, queue: str) -> None:
    r = await client.post("/api/v1/jobs", json={"type": f"nobody.runs.{queue}", "queue": queue})
    assert r.status_code == 201, r.text
    assert "no worker has registered type" in r.json()["warnings"][0]
    known = await client.post("/api/v1/jobs", json={"type": "noop", "queue": queue})
    assert known.status_code == 201 and known.json()["warnings"] == []
    batch = await client.post("/api/v1/jobs/batch", json={"jobs": [{"type": f"nobody.{queue}", "queue": queue}]})
    assert batch.status_code == 201 and len(batch.json()["warnings"]) == 1


async def test_strict_types_refuse_an_unknown_type(api_settings: Settings, queue: str) -> None:
    strict = create_app(api_settings.model_copy(update={"strict_types": True}))
    async with strict.router.lifespan_context(strict):
        transport = httpx.ASGITransport(app=strict)
        async with httpx.AsyncClient(transport=transport, base_url="http://tickr.test") as http:
            r = await http.post("/api/v1/jobs", json={"type": f"nobody.runs.{queue}", "queue": queue})
            assert problem_fields(r).keys() == {"type"}
            assert (await http.get("/api/v1/jobs", params={"queue": queue})).json()["jobs"] == []  # nothing written
