"""The script lane: RESP packing and error classes as redis-py makes them, NOSCRIPT reload, order kept when
streaming, one path per call (bounded, waiting for a free connection), lost connections retried once,
cancellation, closing with the client, and which clients get a lane at all.

The URL forms a lane speaks (db, password, ACL user, unix socket, TLS) are in test_connect_urls.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.credentials import UsernamePasswordCredentialProvider
from redis.exceptions import BusyLoadingError, MovedError, NoScriptError, ReadOnlyError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError

from tests.waiting import wait_until
from tickr.core.factory import new_job
from tickr.core.job import Priority
from tickr.store import connection
from tickr.store.connection import LanePool, ScriptLane, UnsupportedEndpoint, connect, pack_command
from tickr.store.resp import RespConnection, endpoint_of, error_from_reply
from tickr.store.store import RedisStore

Commands = AsyncIterator[tuple[str, str, int, list[Any]]]


async def until(condition: Callable[[], Awaitable[bool] | bool], what: str, timeout: float = 3.0) -> None:
    """Wait for ``condition`` or fail after ``timeout`` seconds (the suite's one polling helper)."""
    await wait_until(condition, timeout, message=what)


async def _clients(redis: Redis) -> dict[int, str]:
    """The server's connections: ``{id: CLIENT LIST line}``."""
    lines = (await redis.execute_command("CLIENT", "LIST")).splitlines()
    return {int(line.split()[0].removeprefix("id=")): line for line in lines}


async def _blocked_in(redis: Redis, client_id: int, command: str = "bzpopmin") -> bool:
    line = (await _clients(redis)).get(client_id, "")
    return f"cmd={command}" in line and "flags=b" in line


async def _lane_client_id(lane: ScriptLane) -> int:
    return int(await lane.call("CLIENT", "ID"))


async def _server_id(redis: Redis, conn: RespConnection) -> int:
    """The server's id of a lane connection (found by its local address: no call on the lane)."""
    transport = conn._transport
    assert transport is not None
    host, port = transport.get_extra_info("sockname")[:2]
    return next(i for i, line in (await _clients(redis)).items() if f" addr={host}:{port} " in f" {line} ")


def _only(lane: ScriptLane) -> RespConnection:
    (conn,) = lane._conns
    return conn


async def _blocked_on_a_new_connection(redis: Redis, lane: ScriptLane, old: RespConnection) -> bool:
    if len(lane._conns) != 1 or old in lane._conns:
        return False
    return await _blocked_in(redis, await _server_id(redis, _only(lane)))


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[Redis]:
    redis = connect(redis_url)
    yield redis
    await redis.aclose()


def _lane(redis: Redis, size: int = 32) -> ScriptLane:
    lane = ScriptLane.for_client(redis, size)
    assert lane is not None
    return lane


# -- packing and error replies, as redis-py makes them ---------------------------------------------


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


def test_error_replies_get_the_classes_redis_py_gives_them() -> None:
    assert type(error_from_reply("NOSCRIPT No matching script.")) is NoScriptError
    assert type(error_from_reply("LOADING Redis is loading the dataset in memory")) is BusyLoadingError
    assert type(error_from_reply("READONLY You can't write against a read only replica.")) is ReadOnlyError
    moved = error_from_reply("MOVED 3999 127.0.0.1:6381")
    assert type(moved) is MovedError and moved.node_addr == ("127.0.0.1", 6381)  # type: ignore[attr-defined]
    plain = error_from_reply("WRONGTYPE Operation against a key holding the wrong kind of value")
    assert type(plain) is ResponseError and str(plain).startswith("WRONGTYPE")
    assert type(error_from_reply("BUSY Redis is busy running a script.")) is ResponseError
    assert type(error_from_reply("MOVED garbage")) is ResponseError  # unparsable: a plain error reply
    assert str(error_from_reply("NOSCRIPT No matching script.")) == "No matching script."  # as redis-py


def test_error_classes_match_redis_py_parser() -> None:
    """A guard against redis-py changing its table: compare with its (private) parser, here in tests only."""
    base = pytest.importorskip("redis._parsers.base")
    parser = base.BaseParser
    for code, kind in parser.EXCEPTION_CLASSES.items():
        messages = (
            list(kind) if isinstance(kind, dict) else ["3999 127.0.0.1:6381" if code in ("MOVED", "ASK") else "x"]
        )
        others = [] if code in ("MOVED", "ASK") else ["some other message"]  # redis-py fails on a bad one
        for rest in [*messages, *others]:
            message = f"{code} {rest}"
            ours, theirs = error_from_reply(message), parser.parse_error(message)
            assert (type(ours), str(ours)) == (type(theirs), str(theirs)), message


# -- which clients get a lane ----------------------------------------------------------------------


def test_endpoint_of_what_the_lane_speaks_and_what_it_does_not() -> None:
    assert endpoint_of(Connection, {"host": "h", "port": 1}).where() == "h:1"
    assert endpoint_of(Connection, {"host": "h", "port": 1, "protocol": 2}).tls is None
    tls = endpoint_of(SSLConnection, {"host": "h", "port": 1, "ssl_cert_reqs": "none"})
    assert tls.tls is not None and not tls.tls.check_hostname
    ep = endpoint_of(UnixDomainSocketConnection, {"path": "/tmp/s", "db": 3, "password": "pw", "username": "u"})
    assert ep.path == "/tmp/s" and ep.tls is None
    assert ep.handshake() == [("AUTH", "u", "pw"), ("SELECT", 3)]
    assert endpoint_of(Connection, {"password": "pw", "client_name": "n"}).handshake() == [
        ("AUTH", "pw"),
        ("CLIENT", "SETNAME", "n"),
    ]
    unsupported: list[tuple[type, dict[str, Any], str]] = [
        (Connection, {"protocol": 3}, "RESP3"),
        (Connection, {"legacy_responses": False}, "RESP3"),
        (Connection, {"credential_provider": UsernamePasswordCredentialProvider("u", "p")}, "credential provider"),
        (Connection, {"redis_connect_func": print}, "sentinel"),
        (type("Custom", (Connection,), {}), {}, "connection class"),
        (UnixDomainSocketConnection, {}, "without a path"),
        (SSLConnection, {"ssl_ca_certs": "/nonexistent/ca.pem"}, "TLS settings"),
        (SSLConnection, {"ssl_cert_reqs": "sometimes"}, "ssl_cert_reqs"),
    ]
    for kind, kwargs, reason in unsupported:
        with pytest.raises(UnsupportedEndpoint, match=reason):
            endpoint_of(kind, kwargs)


async def test_for_client_says_none_for_clients_the_lane_does_not_speak(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    plain_pool = BlockingConnectionPool.from_url(redis_url, decode_responses=True)
    not_ours = Redis(connection_pool=plain_pool)
    resp3 = connect(f"{redis_url}?protocol=3")
    connection._reasons_logged.clear()
    with caplog.at_level("DEBUG", logger="tickr.store.lane"):
        assert ScriptLane.for_client(not_ours) is None
        assert ScriptLane.for_client(resp3) is None
        assert ScriptLane.for_client(resp3) is None  # logged once per reason
        assert ScriptLane.for_client(object()) is None
    reasons = [r.getMessage() for r in caplog.records if r.name == "tickr.store.lane"]
    assert len(reasons) == 3 and len([r for r in reasons if "RESP3" in r]) == 1, reasons
    with pytest.raises(UnsupportedEndpoint, match="LanePool"):
        ScriptLane(not_ours)  # the constructor says why
    ours = connect(redis_url)
    assert isinstance(ours.connection_pool, LanePool)
    lane = ScriptLane(ours, size=1)  # the constructor still works for what the lane speaks
    assert lane.lean and lane.endpoint.tls is None
    assert await lane.call("PING") == "PONG"
    for redis in (not_ours, resp3, ours):
        await redis.aclose()
    await plain_pool.aclose()


# -- replies, errors, NOSCRIPT, order --------------------------------------------------------------


async def test_lane_reloads_a_flushed_script_and_keeps_stream_order(client: Redis, queue: str) -> None:
    lane = _lane(client, size=2)
    source = "return {KEYS[1], ARGV[1]}"
    sha = await lane.script_load(source)
    key = f"tickr:{{{queue}}}:probe"

    async def commands() -> Commands:
        for i in range(300):
            yield (source, sha, 1, [key, str(i)])

    replies = await lane.stream(commands())
    assert replies == [[key, str(i)] for i in range(300)]
    # Flushed: the stream reloads the script once and runs the NOSCRIPT commands again, in order.
    await client.script_flush()
    assert await lane.stream(commands()) == [[key, str(i)] for i in range(300)]
    bad = "#!lua\nreturn redis.call('INCR', KEYS[1])"
    bad_sha = await lane.script_load(bad)
    await client.set(key, "not a number")
    with pytest.raises(ResponseError):
        await lane.evalsha(bad_sha, 1, key)
    assert await lane.call("GET", key) == "not a number"  # the connection is still in step
    await client.delete(key)


async def test_store_hot_path_survives_a_script_flush(client: Redis, queue: str) -> None:
    """NOSCRIPT (a restarted or flushed server) reloads through redis-py's registered script."""
    store = RedisStore(client)
    await store.enqueue(new_job("noop", {}, queue=queue))
    store.scripts._registered["enqueue"].sha = "0" * 40  # as if the server had lost the script
    await store.enqueue(new_job("noop", {}, queue=queue))
    batch = await store.enqueue_many([(new_job("noop", {}, queue=queue), None) for _ in range(3)])
    assert len(batch) == 3
    leased = await store.dequeue(queue, 10, "w")
    assert len(leased.jobs) == 5
    assert await store.ack_many(queue, [(j.job.id, j.token, "") for j in leased.jobs]) == [True] * 5


async def test_lane_replies_of_every_shape_match_the_client(client: Redis, queue: str) -> None:
    lane = _lane(client, size=2)
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
    lane = _lane(client, size=1)
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
    assert await _lane_client_id(lane) == first
    await client.delete(key)


async def test_lane_stream_keeps_order_with_an_error_in_the_middle(client: Redis) -> None:
    lane = _lane(client, size=1)
    source = "if ARGV[1] == '7' then return redis.error_reply('ERR seven') end return tonumber(ARGV[1])"
    sha = await lane.script_load(source)

    async def commands() -> Commands:
        for i in range(40):
            yield (source, sha, 0, [str(i)])

    replies = await lane.stream(commands())
    assert isinstance(replies[7], ResponseError) and "seven" in str(replies[7])
    assert [r for i, r in enumerate(replies) if i != 7] == [i for i in range(40) if i != 7]
    assert await lane.call("PING") == "PONG"


# -- one path: bounded, waiting for a free connection ----------------------------------------------


async def test_a_full_lane_waits_for_a_connection_and_never_opens_more_than_size(client: Redis, queue: str) -> None:
    lane = _lane(client, size=2)
    ids = await asyncio.gather(*(_lane_client_id(lane) for _ in range(50)))
    assert len(set(ids)) == 2 and len(lane._conns) == 2  # the third call on waited for one of the two
    # Both busy (blocked): a third call waits for one of them to come back, it neither opens a third
    # connection nor goes to the client.
    key = f"tickr:{{{queue}}}:marker"
    blocked = [asyncio.create_task(lane.call("BZPOPMIN", key, 5)) for _ in range(2)]
    await until(lambda: _all_blocked(client, set(ids)), "both lane connections blocked in BZPOPMIN")
    third = asyncio.create_task(_lane_client_id(lane))
    await until(lambda: len(lane._waiting) == 1, "the third call waiting for its turn")
    assert not third.done() and len(lane._conns) == 2
    await client.zadd(key, {"a": 1})
    assert await asyncio.wait_for(third, 2) in ids  # on the connection the woken call gave back
    await client.zadd(key, {"b": 2})
    popped = await asyncio.wait_for(asyncio.gather(*blocked), 2)
    assert sorted(p[1] for p in popped) == ["a", "b"]


async def _all_blocked(client: Redis, ids: set[int]) -> bool:
    return all([await _blocked_in(client, i) for i in ids])


async def test_cancelling_a_call_that_waits_for_its_turn_leaves_the_lane_usable(client: Redis, queue: str) -> None:
    lane = _lane(client, size=1)
    first = await _lane_client_id(lane)
    key = f"tickr:{{{queue}}}:marker"
    blocked = asyncio.create_task(lane.call("BZPOPMIN", key, 5))
    await until(lambda: _blocked_in(client, first), "the lane connection blocked in BZPOPMIN")
    waiting = asyncio.create_task(lane.call("PING"))
    await until(lambda: len(lane._waiting) == 1, "the second call waiting")
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await client.zadd(key, {"m": 1})
    assert (await asyncio.wait_for(blocked, 2))[1] == "m"
    assert await _lane_client_id(lane) == first  # given back, not lost with the cancelled waiter


async def test_calls_waiting_for_a_lost_connection_all_complete(client: Redis, queue: str) -> None:
    lane = _lane(client, size=1)
    key = f"tickr:{{{queue}}}:marker"
    first = await _lane_client_id(lane)
    old = _only(lane)
    blocked = asyncio.create_task(lane.call("BZPOPMIN", key, 5))
    await until(lambda: _blocked_in(client, first), "blocked")
    waiting = [asyncio.create_task(lane.call("INCR", f"{key}:n")) for _ in range(5)]
    await until(lambda: len(lane._waiting) == 5, "five calls waiting")
    await client.execute_command("CLIENT", "KILL", "ID", first)
    # The place of the lost connection goes to the first waiting call; the others follow on it, then the
    # BZPOPMIN sent once more (it queued behind them) blocks on it.
    assert sorted(await asyncio.wait_for(asyncio.gather(*waiting), 2)) == [1, 2, 3, 4, 5]
    await until(lambda: _blocked_on_a_new_connection(client, lane, old), "the retried BZPOPMIN blocked")
    await client.zadd(key, {"m": 1})
    assert (await asyncio.wait_for(blocked, 2))[1] == "m"
    assert len(lane._conns) == 1 and lane._opening == 0 and not lane._waiting
    await client.delete(f"{key}:n")


# -- lost connections and cancellation -------------------------------------------------------------


async def test_bzpopmin_wakes_up_and_cancellation_closes_the_connection(client: Redis, queue: str) -> None:
    lane = _lane(client, size=1)
    key = f"tickr:{{{queue}}}:marker"
    first = await _lane_client_id(lane)
    waiting = asyncio.create_task(lane.call("BZPOPMIN", key, 5))
    await until(lambda: _blocked_in(client, first), "the lane connection blocked in BZPOPMIN")
    await client.zadd(key, {"m": 12})
    assert await asyncio.wait_for(waiting, 2) == [key, "m", "12"]
    assert await _lane_client_id(lane) == first
    waiting = asyncio.create_task(lane.call("BZPOPMIN", key, 5))
    await until(lambda: _blocked_in(client, first), "blocked again")
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    second = await _lane_client_id(lane)
    assert second != first  # the cancelled call's connection was closed: its reply would be out of step
    await until(lambda: _gone(client, first), "the cancelled call's connection gone from the server")
    await client.zadd(key, {"late": 1})  # nobody pops it: the cancelled BZPOPMIN really is gone
    assert await client.zcard(key) == 1
    await client.delete(key)


async def _gone(client: Redis, client_id: int) -> bool:
    return client_id not in await _clients(client)


async def test_a_killed_connection_is_replaced_and_the_call_sent_once_more(client: Redis, queue: str) -> None:
    lane = _lane(client, size=1)
    key = f"tickr:{{{queue}}}:marker"
    first = await _lane_client_id(lane)
    old = _only(lane)
    waiting = asyncio.create_task(lane.call("BZPOPMIN", key, 5))
    await until(lambda: _blocked_in(client, first), "the lane connection blocked in BZPOPMIN")
    assert await client.execute_command("CLIENT", "KILL", "ID", first) == 1
    # The call goes on, on a new connection of the lane (the client's own pool is not used).
    await until(lambda: _blocked_on_a_new_connection(client, lane, old), "the call blocked on a new connection")
    assert not waiting.done()
    await client.zadd(key, {"m": 3})
    popped = await asyncio.wait_for(waiting, 2)
    assert popped[0] == key and popped[1] == "m" and float(popped[2]) == 3
    second = await _lane_client_id(lane)
    assert second != first and len(lane._conns) == 1
    # Killed while idle: the next call sees it closed and opens another connection.
    await client.execute_command("CLIENT", "KILL", "ID", second)
    await until(lambda: not lane._conns, "the lane noticing its idle connection was closed")
    third = await _lane_client_id(lane)
    assert third not in (first, second)
    assert await lane.call("PING") == "PONG"


async def test_a_call_whose_retry_is_lost_too_raises_connection_error(client: Redis, queue: str) -> None:
    lane = _lane(client, size=1)
    key = f"tickr:{{{queue}}}:marker"
    first = await _lane_client_id(lane)
    old = _only(lane)
    waiting = asyncio.create_task(lane.call("BZPOPMIN", key, 5))
    await until(lambda: _blocked_in(client, first), "blocked")
    await client.execute_command("CLIENT", "KILL", "ID", first)
    await until(lambda: _blocked_on_a_new_connection(client, lane, old), "the retry blocked on a new connection")
    await client.execute_command("CLIENT", "KILL", "ID", await _server_id(client, _only(lane)))
    with pytest.raises(RedisConnectionError):  # once more only: then the error reaches the caller
        await asyncio.wait_for(waiting, 2)
    assert await lane.call("PING") == "PONG"  # and the lane recovers on the next call


async def test_a_stream_whose_connection_is_lost_resends_only_the_unanswered_commands(
    client: Redis, queue: str
) -> None:
    lane = _lane(client, size=1)
    first = await _lane_client_id(lane)
    (conn,) = lane._idle
    key = f"tickr:{{{queue}}}:list"
    source = "return redis.call('RPUSH', KEYS[1], ARGV[1])"
    sha = await lane.script_load(source)

    async def commands() -> Commands:
        for i in range(50):
            if i == 20:  # the first chunk (16) is answered, 4 are still unsent: lose the connection now
                await until(lambda: not conn._waiters, "the first chunk answered")
                await client.execute_command("CLIENT", "KILL", "ID", first)
                await until(lambda: conn.closed, "the lane connection closed")
            yield (source, sha, 1, [key, str(i)])

    replies = await lane.stream(commands())
    assert replies == list(range(1, 51))  # every reply, in order
    assert await client.lrange(key, 0, -1) == [str(i) for i in range(50)]  # each command ran once, in order
    assert await _lane_client_id(lane) != first
    await client.delete(key)


async def test_a_stream_lost_twice_raises_and_the_lane_recovers(client: Redis, queue: str) -> None:
    lane = _lane(client, size=1)
    key = f"tickr:{{{queue}}}:list"
    source = "return redis.call('RPUSH', KEYS[1], ARGV[1])"
    sha = await lane.script_load(source)
    killed: list[int] = []

    async def commands() -> Commands:
        for i in range(40):
            if i in (5, 25):  # a connection is lost, then the one that replaced it
                conn_id = await _server_id(client, _only(lane))
                killed.append(conn_id)
                await client.execute_command("CLIENT", "KILL", "ID", conn_id)
                await until(lambda: not lane._conns, "the lane connection closed")
            yield (source, sha, 1, [key, str(i)])

    with pytest.raises(RedisConnectionError):
        await lane.stream(commands())
    assert len(killed) == 2 and killed[0] != killed[1]
    assert await lane.call("PING") == "PONG"
    await client.delete(key)


async def test_an_error_of_the_commands_themselves_is_raised_as_is_and_not_retried(client: Redis) -> None:
    lane = _lane(client, size=1)
    source = "return tonumber(ARGV[1])"
    sha = await lane.script_load(source)
    pulled: list[int] = []

    async def commands() -> Commands:
        for i in range(30):
            if i == 20:
                raise RedisConnectionError("the caller's own failure")  # not the lane's connection
            pulled.append(i)
            yield (source, sha, 0, [str(i)])

    with pytest.raises(RedisConnectionError, match="caller's own"):
        await lane.stream(commands())
    assert pulled == list(range(20))  # raised once: no second pass over a half-consumed source
    assert await lane.call("PING") == "PONG"


async def test_a_cancelled_stream_closes_its_connection_and_the_lane_goes_on(client: Redis, queue: str) -> None:
    lane = _lane(client, size=1)
    first = await _lane_client_id(lane)
    source = "return tonumber(ARGV[1])"
    sha = await lane.script_load(source)
    stalled = asyncio.Event()

    async def commands() -> Commands:
        for i in range(20):
            yield (source, sha, 0, [str(i)])
        stalled.set()
        await asyncio.Event().wait()  # never ends: the caller gives up

    task = asyncio.create_task(lane.stream(commands()))
    await asyncio.wait_for(stalled.wait(), 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await _lane_client_id(lane) != first
    await until(lambda: _gone(client, first), "the cancelled stream's connection gone from the server")


# -- closing with the client -----------------------------------------------------------------------


async def test_closing_the_client_closes_the_lane_connections(redis_url: str, queue: str) -> None:
    client = connect(redis_url)
    store = RedisStore(client)
    assert store.lane is not None and store.lane.lean
    await store.enqueue(new_job("noop", {}, queue=queue))
    await store.enqueue_many([(new_job("noop", {}, queue=queue), None) for _ in range(3)])
    conns = list(store.lane._open)
    assert conns
    await client.aclose()
    assert not store.lane._open and not store.lane._conns and not store.lane._idle
    assert all(conn.closed for conn in conns)
    # The lane reopens on use, as the client's pool does; a lane dropped first is closed with the client.
    assert await store.lane.call("PING") == "PONG"
    dropped = _lane(client)
    assert await dropped.call("PING") == "PONG"
    del dropped
    assert len(store.lane._open) == 2
    await client.aclose()
    assert not store.lane._open
