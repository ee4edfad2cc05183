"""Creating Redis/Valkey clients (single server or cluster) with tickr's defaults, and the script lane."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tickr.store.resp import RespConnection, endpoint_of, open_connection, pack_command

__all__ = ["STREAM_CHUNK", "LanePool", "Script", "ScriptLane", "connect", "pack_command"]


def connect(url: str, *, cluster: bool = False, max_connections: int = 128, **options: Any) -> Redis:
    """An asyncio client for ``url``; responses are decoded to ``str``.

    Cluster clients route each script by its first key's hash slot; tickr's keys of one
    queue share a slot, so the same scripts run on both.
    """
    options.setdefault("decode_responses", True)
    options.setdefault("health_check_interval", 30)
    # redis-py 8 reads with a 5 s socket timeout by default: it would cut a marker wait (BZPOPMIN
    # blocks up to wake_cap_seconds) and wraps every read in a timer. Dead peers are found by
    # TCP keepalive and the health check instead.
    options.setdefault("socket_timeout", None)
    options.setdefault("socket_connect_timeout", 5)
    if not url.startswith("unix:"):  # a unix socket connection takes no keepalive options
        options.setdefault("socket_keepalive", True)
    if cluster:
        return RedisCluster.from_url(url, **options)  # type: ignore[return-value]
    # A blocking pool: a burst of concurrent calls waits for a connection instead of failing.
    pool = LanePool.from_url(url, max_connections=max_connections, timeout=None, **options)
    # The client owns its pool: closing the client closes the pool's connections and the lanes'.
    return Redis.from_pool(pool)


class LanePool(BlockingConnectionPool):
    """tickr's pool: disconnecting it (the client closing) also closes the script lanes' own connections.

    It holds them as it holds its own (a lane dropped before the client keeps its connections open
    until then, as connections taken from the pool would).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lane_connections: set[RespConnection] = set()  # connected and not yet lost

    async def disconnect(self, inuse_connections: bool = True) -> None:
        try:
            if inuse_connections:
                conns = list(self.lane_connections)
                for conn in conns:
                    conn.close()
                await asyncio.gather(*(conn.wait_closed() for conn in conns))
        finally:
            await super().disconnect(inuse_connections)


Script = tuple[str, str, int, list[Any]]  # (source, sha, number of keys, keys + args)
STREAM_CHUNK = 16  # commands per write when streaming: small, so the server starts early


class ScriptLane:
    """EVALSHA on a few connections held for the hot path, skipping the client's per-call layers.

    redis-py spends ~50 µs of Python per command around a ~20 µs round trip (pool checkout,
    retries, observability hooks). The lane keeps up to ``size`` connections of its own: lean
    asyncio protocols (``resp.RespConnection``) that write packed RESP and parse replies with
    hiredis, opened with the client's settings (host/port or unix socket, AUTH, SELECT, client
    name) and closed when the client's ``LanePool`` closes. It offers the two methods a registered
    script calls, ``evalsha`` and ``script_load``, so ``AsyncScript`` runs on it as on a client.

    What the lean connections do not do (TLS, sentinel, RESP3, credential providers, a pool that is
    not a ``LanePool``) runs the same way on connections taken from the client's pool instead.
    Busy lane, broken connection, or a cluster client: the call goes to the client.
    """

    def __init__(self, redis: Redis, size: int = 32) -> None:
        self.redis = redis
        self.size = size
        pool = getattr(redis, "connection_pool", None)
        self._endpoint = (
            endpoint_of(pool.connection_class, pool.connection_kwargs) if isinstance(pool, LanePool) else None
        )
        self._idle: list[RespConnection] = []
        self._held = 0  # connections idle or in use (not yet discarded)
        # Connected and not yet lost: the pool's set, which it closes when the client closes.
        self._open: set[RespConnection] = pool.lane_connections if isinstance(pool, LanePool) else set()
        self._pooled_idle: list[AbstractConnection] = []
        self._pooled_held = 0

    @property
    def lean(self) -> bool:
        """True when the lane runs on its own connections, False on connections of the client's pool."""
        return self._endpoint is not None

    async def evalsha(self, sha: str, numkeys: int, *args: Any) -> Any:
        """``EVALSHA``; NOSCRIPT and other error replies raise as from the client."""
        return await self.call("EVALSHA", sha, numkeys, *args)

    async def call(self, *command: Any) -> Any:
        """Any command whose reply needs no client-side parsing (EVALSHA, BZPOPMIN's raw list).

        Cancelling a call closes its connection (its reply would come later, out of step); a lost
        connection sends the command to the client once, which retries with its own policy.
        """
        if self._endpoint is None:
            return await self._call_pooled(command)
        packed = pack_command(*command)
        idle = self._idle
        conn = idle.pop() if idle and not idle[-1].closed else await self._take()
        if conn is None:
            return await self.redis.execute_command(*command)  # type: ignore[no-untyped-call]
        try:
            reply = await conn.send(packed)
        except RedisConnectionError:
            self._discard(conn)
            return await self.redis.execute_command(*command)  # type: ignore[no-untyped-call]
        except BaseException:
            self._discard(conn)
            raise
        if isinstance(reply, RedisError):
            if isinstance(reply, RedisConnectionError):  # LOADING and the like: redis-py raises them as such
                self._discard(conn)
                return await self.redis.execute_command(*command)  # type: ignore[no-untyped-call]
            idle.append(conn)  # an error reply leaves the connection in step
            raise reply
        idle.append(conn)
        return reply

    async def script_load(self, script: str) -> str:
        return str(await self.redis.script_load(script))

    async def stream(self, commands: AsyncIterable[Script]) -> list[Any]:
        """Run ``(script source, sha, numkeys, args)`` EVALSHAs in order on one connection, in one pass.

        Commands are sent in chunks as ``commands`` yields them, so building and packing overlap the
        server's work on what was already sent; one connection keeps the order. Error replies come
        back as exceptions in the list; commands that met NOSCRIPT are run again, in order, after
        loading their script.
        """
        if self._endpoint is None:
            return await self._stream_pooled(commands)
        idle = self._idle
        conn = idle.pop() if idle and not idle[-1].closed else await self._take()
        if conn is None:
            return await self._stream_on_client(commands)
        sent: list[Script] = []
        try:
            replies = await self._stream_on(conn, commands, sent)
        except BaseException:
            self._discard(conn)
            raise
        idle.append(conn)
        return await self._reload(replies, sent)

    # -- own connections ----------------------------------------------------------------------
    async def _take(self) -> RespConnection | None:
        """An idle connection, else a new one while under ``size``; None: the call goes to the client."""
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed:
                return conn
            self._held -= 1  # closed while idle (server gone, client closed): forget it
        if self._held >= self.size or self._endpoint is None:
            return None
        self._held += 1
        try:
            conn = await open_connection(self._endpoint, self._open.discard)
        except (RedisConnectionError, RedisTimeoutError):
            self._held -= 1
            return None  # the client connects (or fails) with its own retry policy
        except BaseException:
            self._held -= 1
            raise
        self._open.add(conn)
        return conn

    def _discard(self, conn: RespConnection) -> None:
        """Close a connection whose reply is not read (error, cancellation); another is opened on need."""
        self._held -= 1
        conn.close()

    async def _stream_on(self, conn: RespConnection, commands: AsyncIterable[Script], sent: list[Script]) -> list[Any]:
        waiters: list[asyncio.Future[Any]] = []
        chunk: list[bytes] = []
        async for command in commands:
            sent.append(command)
            _, sha, numkeys, args = command
            chunk.append(pack_command("EVALSHA", sha, numkeys, *args))
            if len(chunk) == STREAM_CHUNK:
                waiters += conn.send_many(chunk)
                chunk = []
                await conn.drain()
        if chunk:
            waiters += conn.send_many(chunk)
        replies = [await waiter for waiter in waiters]
        for reply in replies:
            if isinstance(reply, RedisConnectionError):  # as redis-py raises it: the connection is not reused
                raise reply
        return replies

    # -- shared ---------------------------------------------------------------------------------
    async def _stream_on_client(self, commands: AsyncIterable[Script]) -> list[Any]:
        sent = [command async for command in commands]
        pipe = self.redis.pipeline(transaction=False)
        for _, sha, numkeys, args in sent:
            pipe.evalsha(sha, numkeys, *args)
        return list(await pipe.execute(raise_on_error=False))

    async def _reload(self, replies: list[Any], sent: list[Script]) -> list[Any]:
        for i, reply in enumerate(replies):
            if isinstance(reply, NoScriptError):
                source, sha, numkeys, args = sent[i]
                await self.script_load(source)
                try:
                    replies[i] = await self.evalsha(sha, numkeys, *args)
                except ResponseError as exc:
                    replies[i] = exc
        return replies

    # -- connections of the client's pool (what the lean connections do not handle) -------------
    async def _take_pooled(self) -> AbstractConnection | None:
        if self._pooled_idle:
            return self._pooled_idle.pop()
        if self._pooled_held >= self.size:
            return None
        self._pooled_held += 1
        try:
            conn: AbstractConnection = await self.redis.connection_pool.get_connection()  # type: ignore[no-untyped-call]
            return conn
        except BaseException:
            self._pooled_held -= 1
            raise

    async def _drop(self, conn: AbstractConnection) -> None:
        """Close a connection whose reply is not read (error, cancellation); it reconnects on next use."""
        try:
            await conn.disconnect(nowait=True)
        finally:
            self._pooled_idle.append(conn)

    async def _call_pooled(self, command: tuple[Any, ...]) -> Any:
        conn = await self._take_pooled()
        if conn is None:
            return await self.redis.execute_command(*command)  # type: ignore[no-untyped-call]
        try:
            await conn.send_packed_command(pack_command(*command), check_health=False)
            reply = await conn.read_response()
        except ResponseError:
            self._pooled_idle.append(conn)  # an error reply leaves the connection in step
            raise
        except (RedisConnectionError, RedisTimeoutError):
            await self._drop(conn)
            # The client retries with its own policy, as a direct client call would have.
            return await self.redis.execute_command(*command)  # type: ignore[no-untyped-call]
        except BaseException:
            await self._drop(conn)
            raise
        self._pooled_idle.append(conn)
        return reply

    async def _stream_pooled(self, commands: AsyncIterable[Script]) -> list[Any]:
        conn = await self._take_pooled()
        if conn is None:
            return await self._stream_on_client(commands)
        sent: list[Script] = []
        try:
            replies = await self._stream_on_pooled(conn, commands, sent)
        except BaseException:
            await self._drop(conn)
            raise
        self._pooled_idle.append(conn)
        return await self._reload(replies, sent)

    async def _stream_on_pooled(
        self, conn: AbstractConnection, commands: AsyncIterable[Script], sent: list[Script]
    ) -> list[Any]:
        chunk: list[bytes] = []
        async for command in commands:
            sent.append(command)
            _, sha, numkeys, args = command
            chunk.append(pack_command("EVALSHA", sha, numkeys, *args))
            if len(chunk) == STREAM_CHUNK:
                await conn.send_packed_command(chunk, check_health=False)
                chunk = []
        if chunk:
            await conn.send_packed_command(chunk, check_health=False)
        replies: list[Any] = []
        for _ in sent:
            try:
                replies.append(await conn.read_response())
            except ResponseError as exc:
                replies.append(exc)
        return replies
