"""The script lane: RESP packing as redis-py does it, NOSCRIPT reload, order kept when streaming, fallbacks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio.connection import Connection
from redis.exceptions import ResponseError

from tickr.core.job import Priority
from tickr.store.connection import ScriptLane, connect, pack_command
from tickr.store.store import RedisStore


@pytest.mark.parametrize(
    "args",
    [
        ("EVALSHA", "abc", 2, "k1", "k2", 0, 1.5, -3, 10**20),
        ("SET", "é-non-ascii", b"\x00bytes"),
        ("HSET", Priority.HIGH, "x"),
    ],
)
def test_pack_command_matches_redis_py(args: tuple[object, ...]) -> None:
    assert pack_command(*args) == b"".join(Connection().pack_command(*args))  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [None, True, 1j])
def test_pack_command_refuses_what_redis_py_refuses(bad: object) -> None:
    with pytest.raises(TypeError):
        pack_command("SET", "k", bad)  # type: ignore[arg-type]


async def test_lane_reloads_a_flushed_script_and_keeps_stream_order(redis_url: str, queue: str) -> None:
    client = connect(redis_url)
    lane = ScriptLane(client, size=2)
    source = "return {KEYS[1], ARGV[1]}"
    sha = await lane.script_load(source)
    key = f"tickr:{{{queue}}}:probe"

    async def commands() -> AsyncIterator[tuple[str, str, int, list[Any]]]:
        for i in range(300):
            yield (source, sha, 1, [key, str(i)])

    replies = await lane.stream(commands())
    assert replies == [[key, str(i)] for i in range(300)]
    bad = "#!lua\nreturn redis.call('INCR', KEYS[1])"
    bad_sha = await lane.script_load(bad)
    await client.set(key, "not a number")
    with pytest.raises(ResponseError):
        await lane.evalsha(bad_sha, 1, key)
    assert await lane.call("GET", key) == "not a number"  # the connection is still in step
    await client.delete(key)
    await client.aclose()


async def test_store_hot_path_survives_a_script_flush(redis_url: str, queue: str) -> None:
    """NOSCRIPT (a restarted or flushed server) reloads through redis-py's registered script."""
    from tickr.core.factory import new_job

    client = connect(redis_url)
    store = RedisStore(client)
    await store.enqueue(new_job("noop", {}, queue=queue))
    store.scripts._registered["enqueue"].sha = "0" * 40  # as if the server had lost the script
    await store.enqueue(new_job("noop", {}, queue=queue))
    batch = await store.enqueue_many([(new_job("noop", {}, queue=queue), None) for _ in range(3)])
    assert len(batch) == 3
    leased = await store.dequeue(queue, 10, "w")
    assert len(leased.jobs) == 5
    assert await store.ack_many(queue, [(j.job.id, j.token, "") for j in leased.jobs]) == [True] * 5
    await client.aclose()


async def test_a_cancelled_call_leaves_the_lane_usable(redis_url: str, queue: str) -> None:
    client = connect(redis_url)
    lane = ScriptLane(client, size=1)
    key = f"tickr:{{{queue}}}:marker"
    waiting = asyncio.create_task(lane.call("BZPOPMIN", key, 5))
    await asyncio.sleep(0.05)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert await lane.call("PING") == "PONG"
    await client.aclose()
