"""Creating Redis/Valkey clients (single server or cluster) with tickr's defaults, and the script lane."""

from __future__ import annotations

from collections.abc import AsyncIterable
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError


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
    options.setdefault("socket_keepalive", True)
    if cluster:
        return RedisCluster.from_url(url, **options)  # type: ignore[return-value]
    # A blocking pool: a burst of concurrent calls waits for a connection instead of failing.
    pool = BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=None, **options)
    return Redis(connection_pool=pool)


def pack_command(*args: str | int | float | bytes) -> bytes:
    """One command in RESP, as redis-py's ``pack_command`` makes it for the str/int/float/bytes scripts take.

    The common case (ASCII text and numbers) is built as one str and encoded once.
    """
    parts = [f"*{len(args)}\r\n"]
    for arg in args:
        kind = type(arg)
        if isinstance(arg, str) and kind is str and arg.isascii():  # exactly str: a subclass goes the long way
            parts.append(f"${len(arg)}\r\n{arg}\r\n")
        elif kind is int or kind is float:
            text = repr(arg)
            parts.append(f"${len(text)}\r\n{text}\r\n")
        else:
            return _pack_bytes(args)
    return "".join(parts).encode()


def _pack_bytes(args: tuple[str | int | float | bytes, ...]) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            data = arg.encode()
        elif isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, int | float) and not isinstance(arg, bool):
            data = repr(arg).encode()
        else:
            raise TypeError(f"cannot send {type(arg).__name__} to Redis: {arg!r}")
        parts.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(parts)


Script = tuple[str, str, int, list[Any]]  # (source, sha, number of keys, keys + args)
STREAM_CHUNK = 16  # commands per write when streaming: small, so the server starts early


class ScriptLane:
    """EVALSHA on a few connections held for the hot path, skipping the client's per-call layers.

    redis-py spends ~50 µs of Python per command around a ~20 µs round trip (pool checkout,
    retries, observability hooks). The lane keeps up to ``size`` connections of the client's pool
    (closed with it) and writes and reads EVALSHA on them directly. It offers the two methods a
    registered script calls, ``evalsha`` and ``script_load``, so ``AsyncScript`` runs on it as on
    a client. Busy lane, broken connection, or a cluster client: the call goes to the client.
    """

    def __init__(self, redis: Redis, size: int = 32) -> None:
        self.redis = redis
        self.size = size
        self._idle: list[AbstractConnection] = []
        self._held = 0

    async def _take(self) -> AbstractConnection | None:
        if self._idle:
            return self._idle.pop()
        if self._held >= self.size:
            return None
        self._held += 1
        try:
            conn: AbstractConnection = await self.redis.connection_pool.get_connection()  # type: ignore[no-untyped-call]
            return conn
        except BaseException:
            self._held -= 1
            raise

    async def _drop(self, conn: AbstractConnection) -> None:
        """Close a connection whose reply is not read (error, cancellation); it reconnects on next use."""
        try:
            await conn.disconnect(nowait=True)
        finally:
            self._idle.append(conn)

    async def evalsha(self, sha: str, numkeys: int, *args: Any) -> Any:
        """``EVALSHA``; NOSCRIPT and other error replies raise as from the client."""
        return await self.call("EVALSHA", sha, numkeys, *args)

    async def call(self, *command: Any) -> Any:
        """Any command whose reply needs no client-side parsing (EVALSHA, BZPOPMIN's raw list)."""
        conn = await self._take()
        if conn is None:
            return await self.redis.execute_command(*command)  # type: ignore[no-untyped-call]
        try:
            await conn.send_packed_command(pack_command(*command), check_health=False)
            reply = await conn.read_response()
        except ResponseError:
            self._idle.append(conn)  # an error reply leaves the connection in step
            raise
        except (RedisConnectionError, RedisTimeoutError):
            await self._drop(conn)
            # The client retries with its own policy, as a direct client call would have.
            return await self.redis.execute_command(*command)  # type: ignore[no-untyped-call]
        except BaseException:
            await self._drop(conn)
            raise
        self._idle.append(conn)
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
        conn = await self._take()
        if conn is None:
            sent = [command async for command in commands]
            pipe = self.redis.pipeline(transaction=False)
            for _, sha, numkeys, args in sent:
                pipe.evalsha(sha, numkeys, *args)
            return list(await pipe.execute(raise_on_error=False))
        sent = []
        try:
            replies = await self._stream_on(conn, commands, sent)
        except BaseException:
            await self._drop(conn)
            raise
        self._idle.append(conn)
        for i, reply in enumerate(replies):
            if isinstance(reply, NoScriptError):
                source, sha, numkeys, args = sent[i]
                await self.script_load(source)
                try:
                    replies[i] = await self.evalsha(sha, numkeys, *args)
                except ResponseError as exc:
                    replies[i] = exc
        return replies

    async def _stream_on(
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
