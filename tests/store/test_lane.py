"""The script lane: RESP packing as redis-py does it, NOSCRIPT reload, order kept when streaming, fallbacks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.exceptions import AuthenticationError, NoScriptError, ResponseError

from tickr.core.factory import new_job
from tickr.core.job import Priority
from tickr.runtime.embedded import EmbeddedValkey
from tickr.store.connection import ScriptLane, connect, pack_command
from tickr.store.resp import endpoint_of
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


# -- the lane's own connections (resp.RespConnection) ------------------------------------------------


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[Redis]:
    redis = connect(redis_url)
    yield redis
    await redis.aclose()


async def _lane_client_id(lane: ScriptLane) -> int:
    return int(await lane.call("CLIENT", "ID"))


async def test_lane_replies_of_every_shape_match_the_client(client: Redis, queue: str) -> None:
    lane = ScriptLane(client, size=2)
    assert lane.lean
    key = f"tickr:{{{queue}}}:shapes"
    source = "return {KEYS[1], 42, false, {ARGV[1], {7, 'é'}}, redis.call('GET', KEYS[1])}"
    sha = await lane.script_load(source)
    await client.set(key, "v")
    expected = [key, 42, None, ["x", [7, "é"]], "v"]
    assert await lane.evalsha(sha, 1, key, "x") == expected
    assert await client.evalsha(sha, 1, key, "x") == expected  # as redis-py decodes it
    assert await lane.call("PING") == "PONG"  # status reply
    assert await lane.call("GET", key) == "v"  # bulk
    assert await lane.call("GET", f"{key}:none") is None  # nil
    assert await lane.call("INCRBY", f"{key}:n", 5) == 5  # integer
    assert await lane.call("SET", f"{key}:b", b"\x00\xff") == "OK"
    with pytest.raises(UnicodeDecodeError):  # decode_responses=True, strict, as redis-py
        await lane.call("GET", f"{key}:b")
    assert await lane.call("LRANGE", f"{key}:empty", 0, -1) == []
    big = "y" * 200_000  # a reply spanning many reads
    await lane.call("SET", key, big)
    assert await lane.call("GET", key) == big
    await client.delete(key, f"{key}:n", f"{key}:b")


async def test_lane_error_replies_and_noscript(client: Redis, queue: str) -> None:
    lane = ScriptLane(client, size=1)
    key = f"tickr:{{{queue}}}:err"
    first = await _lane_client_id(lane)
    with pytest.raises(NoScriptError):
        await lane.evalsha("0" * 40, 0)
    await client.set(key, "s")
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await lane.call("LPUSH", key, "x")
    with pytest.raises(ResponseError) as raised:
        await lane.call("EVAL", "return redis.error_reply('MYERR custom')", 0)
    assert not isinstance(raised.value, NoScriptError)
    assert await _lane_client_id(lane) == first  # error replies keep the connection in step
    # A registered script run through the lane reloads after NOSCRIPT, as on the client.
    script = client.register_script("return ARGV[1]")
    await client.script_flush()
    assert await script(args=["again"], client=lane) == "again"  # type: ignore[arg-type]
    await client.delete(key)


async def test_lane_stream_keeps_order_with_an_error_in_the_middle(client: Redis, queue: str) -> None:
    lane = ScriptLane(client, size=1)
    source = "if ARGV[1] == '7' then return redis.error_reply('ERR seven') end return tonumber(ARGV[1])"
    sha = await lane.script_load(source)

    async def commands() -> AsyncIterator[tuple[str, str, int, list[Any]]]:
        for i in range(40):
            yield (source, sha, 0, [str(i)])

    replies = await lane.stream(commands())
    assert isinstance(replies[7], ResponseError) and "seven" in str(replies[7])
    assert [r for i, r in enumerate(replies) if i != 7] == [i for i in range(40) if i != 7]
    assert await lane.call("PING") == "PONG"


async def test_lane_bzpopmin_wakes_up_and_cancellation_closes_the_connection(client: Redis, queue: str) -> None:
    lane = ScriptLane(client, size=1)
    key = f"tickr:{{{queue}}}:marker"
    waiting = asyncio.create_task(lane.call("BZPOPMIN", key, 5))
    await asyncio.sleep(0.05)
    await client.zadd(key, {"m": 12})
    assert await asyncio.wait_for(waiting, 2) == [key, "m", "12"]
    first = await _lane_client_id(lane)
    waiting = asyncio.create_task(lane.call("BZPOPMIN", key, 5))
    await asyncio.sleep(0.05)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert await _lane_client_id(lane) != first  # the cancelled call's connection was closed
    await asyncio.sleep(0.01)
    ids = [line.split()[0] for line in (await client.execute_command("CLIENT", "LIST")).splitlines()]
    assert f"id={first}" not in ids


async def test_a_killed_lane_connection_falls_back_and_recovers(client: Redis, queue: str) -> None:
    lane = ScriptLane(client, size=1)
    key = f"tickr:{{{queue}}}:marker"
    first = await _lane_client_id(lane)
    waiting = asyncio.create_task(lane.call("BZPOPMIN", key, 5))
    await asyncio.sleep(0.05)
    assert await client.execute_command("CLIENT", "KILL", "ID", first) == 1
    await asyncio.sleep(0.05)  # the call went on to the client, which now blocks
    assert not waiting.done()
    await client.zadd(key, {"m": 3})
    popped = await asyncio.wait_for(waiting, 2)
    assert popped[0] == key and popped[1] == "m" and float(popped[2]) == 3
    second = await _lane_client_id(lane)
    assert second != first
    # Killed while idle: the next call opens another connection.
    await client.execute_command("CLIENT", "KILL", "ID", second)
    await asyncio.sleep(0.05)
    assert await _lane_client_id(lane) not in (first, second)
    assert await lane.call("PING") == "PONG"


async def test_closing_the_client_closes_the_lane_connections(redis_url: str, queue: str) -> None:
    client = connect(redis_url)
    store = RedisStore(client)
    assert store.lane is not None and store.lane.lean
    await store.enqueue(new_job("noop", {}, queue=queue))
    await store.enqueue_many([(new_job("noop", {}, queue=queue), None) for _ in range(3)])
    conns = list(store.lane._open)
    assert conns
    await client.aclose()
    assert not store.lane._open
    assert all(conn.closed for conn in conns)
    # The lane reopens on use, as the client's pool does; a lane dropped first is closed with the client.
    assert await store.lane.call("PING") == "PONG"
    dropped = ScriptLane(client)
    assert await dropped.call("PING") == "PONG"
    del dropped
    assert len(store.lane._open) == 2
    await client.aclose()
    assert not store.lane._open


def test_what_the_lean_connections_do_not_handle_keeps_the_client_pool_path() -> None:
    assert endpoint_of(Connection, {"host": "h", "port": 1}) is not None
    assert endpoint_of(SSLConnection, {"host": "h", "port": 1}) is None
    assert endpoint_of(Connection, {"host": "h", "port": 1, "protocol": 3}) is None
    assert endpoint_of(Connection, {"host": "h", "credential_provider": object()}) is None
    ep = endpoint_of(UnixDomainSocketConnection, {"path": "/tmp/s", "db": 3, "password": "pw", "username": "u"})
    assert ep is not None and ep.path == "/tmp/s"
    assert ep.handshake() == [("AUTH", "u", "pw"), ("SELECT", 3)]


async def test_a_client_not_made_by_connect_uses_connections_of_its_pool(redis_url: str) -> None:
    pool = BlockingConnectionPool.from_url(redis_url, decode_responses=True, socket_timeout=None)
    client = Redis(connection_pool=pool)
    lane = ScriptLane(client, size=1)
    assert not lane.lean
    sha = await lane.script_load("return {1, ARGV[1]}")
    assert await lane.evalsha(sha, 0, "a") == [1, "a"]
    await client.aclose()
    await pool.aclose()


async def test_lane_auth_and_select_on_a_password_protected_server(tmp_path: Path, queue: str) -> None:
    server = EmbeddedValkey(tmp_path, persistent=False)
    server.start()  # its readiness probe has no password: the password is set once it runs
    try:
        setup = server.client()
        setup.config_set("requirepass", "pw")
        setup.close()
        url = f"redis://:pw@127.0.0.1:{server.port}/3"
        client = connect(url, client_name="tickr-lane-test")
        lane = ScriptLane(client, size=2)
        assert lane.lean
        key = f"tickr:{{{queue}}}:db3"
        assert await lane.call("SET", key, "here") == "OK"
        assert await lane.call("CLIENT", "GETNAME") == "tickr-lane-test"
        check = redis.Redis.from_url(url, decode_responses=True)
        assert check.get(key) == "here"
        other = redis.Redis.from_url(f"redis://:pw@127.0.0.1:{server.port}/0")
        assert other.get(key) is None
        check.close()
        other.close()
        await client.aclose()
        # A wrong password: the lane's connection fails and the call goes to the client, which raises.
        bad = connect(f"redis://:nope@127.0.0.1:{server.port}/3")
        with pytest.raises(AuthenticationError):
            await ScriptLane(bad).call("PING")
        await bad.aclose()
    finally:
        server.stop()


async def test_lane_over_a_unix_socket(tmp_path: Path, queue: str) -> None:
    server = EmbeddedValkey(tmp_path, persistent=False, unix_socket=True)
    server.start()
    try:
        url = server.url.replace("db=0", "db=2")
        client = connect(url)
        store = RedisStore(client)
        assert store.lane is not None and store.lane.lean
        assert store.lane._endpoint is not None and store.lane._endpoint.path == str(server.socket_path)
        result = await store.enqueue(new_job("noop", {}, queue=queue))
        assert await store.lane.call("EXISTS", store.keys(queue).job(result.id)) == 1
        assert await store.wait_for_marker(queue, 0.5) is not None
        check = redis.Redis.from_url(url)
        with redis.Redis.from_url(server.url) as db0:
            assert not db0.exists(store.keys(queue).job(result.id))
        assert check.exists(store.keys(queue).job(result.id)) == 1
        check.close()
        await client.aclose()
    finally:
        server.stop()
