"""``TICKR_REDIS_MIN_REPLICAS``: WAIT rides with each state-changing script in the same write, on the script lane
and on the redis-py client; a shortfall is ``ReplicationShortfall`` (503 ``replication-shortfall`` in the API).

Against a primary with one replica of this module (redis-server on free loopback ports)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redis
from redis.asyncio import Redis

from tests.cluster.servers import Server, free_ports, server_binary, wait_until
from tickr.api.app import create_app
from tickr.app import App
from tickr.config import Settings
from tickr.core.errors import ReplicationShortfall
from tickr.core.factory import new_job
from tickr.store.connection import connect
from tickr.store.store import RedisStore, StoreConfig

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="module")
def replicated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    """(primary port, replica port), the replica in sync."""
    binary = server_binary()
    base = tmp_path_factory.mktemp("replicated")
    servers: list[Server] = []
    try:
        if binary is None:
            raise RuntimeError("no redis-server or valkey-server")
        primary, replica = free_ports(2, 7090)
        common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        for port, extra in ((primary, []), (replica, ["--replicaof", "127.0.0.1", str(primary)])):
            server = Server(port, base / str(port), ["--port", str(port), *common, *extra], binary)
            servers.append(server)
            server.start()

        def synced() -> bool:
            info = redis.Redis(port=primary).info("replication")
            return any(isinstance(v, dict) and v.get("state") == "online" for v in info.values())

        wait_until(synced, 20, "the replica in sync")
    except Exception as exc:
        for s in servers:
            s.kill()
        if IN_CI:
            pytest.fail(f"no primary with a replica: {exc}")
        pytest.skip(f"no primary with a replica: {exc}")
    yield primary, replica
    for s in servers:
        s.kill()


@pytest.fixture(params=["lane", "client"])
async def client(request: pytest.FixtureRequest, replicated: tuple[int, int]) -> AsyncIterator[Redis]:
    url = f"redis://127.0.0.1:{replicated[0]}/0"
    made = connect(url) if request.param == "lane" else Redis.from_url(url, decode_responses=True)
    yield made
    await made.aclose()


def store_for(client: Redis, min_replicas: int, lane: bool) -> RedisStore:
    store = RedisStore(client, StoreConfig(min_replicas=min_replicas, min_replicas_timeout_ms=100))
    assert (store.lane is not None) is lane
    return store


async def test_a_write_is_on_the_replica_when_enqueue_returns(
    client: Redis, replicated: tuple[int, int], queue: str, request: pytest.FixtureRequest
) -> None:
    lane = "lane" in request.node.callspec.id
    store = store_for(client, 1, lane)
    replica = redis.Redis(port=replicated[1], decode_responses=True)
    for _ in range(20):  # WAIT answered 1 before each enqueue returned: the replica has every job already
        made = await store.enqueue(new_job("noop", {}, queue=queue))
        assert replica.exists(store.keys(queue).job(made.id)) == 1
    batch = await store.dequeue(queue, 5, "w")
    assert await store.ack_many(queue, [(j.job.id, j.token, "") for j in batch.jobs]) == [True] * 5
    assert len(await store.enqueue_many([(new_job("noop", {}, queue=queue), None) for _ in range(3)])) == 3
    assert replica.zcard(store.keys(queue).done) == 5


async def test_fewer_replicas_than_required_is_an_error(
    client: Redis, queue: str, request: pytest.FixtureRequest
) -> None:
    store = store_for(client, 2, "lane" in request.node.callspec.id)
    with pytest.raises(ReplicationShortfall, match="1 of 2") as caught:
        await store.enqueue(new_job("noop", {}, queue=queue))
    assert (caught.value.acked, caught.value.wanted) == (1, 2)
    with pytest.raises(ReplicationShortfall):
        await store.enqueue_many([(new_job("noop", {}, queue=queue), None)])
    assert len((await store.dequeue(queue, 10, "w")).jobs) == 2  # the writes stand; dequeue does not WAIT
    assert (await store.metrics.snapshot()).queues  # read-only scripts do not WAIT


async def test_the_api_answers_a_shortfall_with_503(replicated: tuple[int, int], tmp_path: Path, queue: str) -> None:
    settings = Settings(
        redis_url=f"redis://127.0.0.1:{replicated[0]}/0",
        redis_min_replicas=2,
        redis_min_replicas_timeout_ms=50,
        data_dir=tmp_path,
        history=False,
    )
    app = App(settings=settings)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(settings, app)), base_url="http://t"
        ) as http:
            r = await http.post("/api/v1/jobs", json={"type": "noop", "queue": queue})
        assert r.status_code == 503
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["type"].endswith("replication-shortfall")
        with pytest.raises(ReplicationShortfall):
            await app.enqueue("noop", {}, queue=queue)
    finally:
        await app.close()
