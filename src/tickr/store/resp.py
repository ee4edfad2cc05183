"""A lean RESP2 connection for the script lane: an asyncio ``Protocol`` that writes packed commands and
parses replies with ``hiredis.Reader`` configured as redis-py configures it.

Replies are decoded as redis-py decodes them (``decode_responses``: bulk strings to ``str``, integers to
``int``, arrays to lists, nil to None); an error reply comes back as the exception instance redis-py
would raise (``NoScriptError`` for NOSCRIPT, ``ResponseError`` otherwise, ``ConnectionError`` kinds such
as LOADING), for the caller to raise or keep. Replies are matched to requests first in, first out.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import hiredis
from redis._parsers import BaseParser
from redis.asyncio.connection import Connection, UnixDomainSocketConnection
from redis.exceptions import AuthenticationError, InvalidResponse, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

_NEED_DATA = object()  # hiredis' "not enough data yet" marker (a reply is never this object)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and how to open a lane connection: what the client's pool would do, for the cases handled here."""

    host: str = "localhost"
    port: int = 6379
    path: str | None = None  # a unix socket instead of host/port
    username: str | None = None
    password: str | None = None
    db: int = 0
    client_name: str | None = None
    decode: bool = True
    encoding: str = "utf-8"
    errors: str = "strict"
    connect_timeout: float | None = 5.0
    keepalive: bool = True
    keepalive_options: dict[int, Any] = field(default_factory=dict)

    def reader_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "protocolError": InvalidResponse,
            "replyError": BaseParser.parse_error,
            "notEnoughData": _NEED_DATA,
        }
        if self.decode:
            options["encoding"] = self.encoding
            options["errors"] = self.errors
        return options

    def handshake(self) -> list[tuple[Any, ...]]:
        """The commands a new connection sends before use (as redis-py's ``on_connect``, RESP2 only)."""
        commands: list[tuple[Any, ...]] = []
        if self.username or self.password:
            commands.append(("AUTH", self.username, self.password) if self.username else ("AUTH", self.password))
        if self.client_name:
            commands.append(("CLIENT", "SETNAME", self.client_name))
        if self.db:
            commands.append(("SELECT", self.db))
        return commands


def endpoint_of(kind: type, kwargs: dict[str, Any]) -> Endpoint | None:
    """The endpoint of a pool's connections (class and kwargs), or None when they need what the lane
    does not do: TLS, sentinel or any other connection class, RESP3, a credential provider."""
    if kind is Connection:
        where: dict[str, Any] = {"host": kwargs.get("host", "localhost"), "port": int(kwargs.get("port", 6379))}
        if kwargs.get("socket_type", 0) not in (0, socket.SOCK_STREAM):
            return None
    elif kind is UnixDomainSocketConnection:
        if not kwargs.get("path"):
            return None
        where = {"path": kwargs["path"]}
    else:
        return None
    if str(kwargs.get("protocol") or 2) != "2" or kwargs.get("credential_provider") is not None:
        return None
    keepalive = bool(kwargs.get("socket_keepalive", False)) and kind is Connection
    options = kwargs.get("socket_keepalive_options")
    if keepalive and not isinstance(options, dict):
        from redis._defaults import get_default_socket_keepalive_options

        options = get_default_socket_keepalive_options()
    return Endpoint(
        **where,
        username=kwargs.get("username") or None,
        password=kwargs.get("password") or None,
        db=int(kwargs.get("db") or 0),
        client_name=kwargs.get("client_name") or None,
        decode=bool(kwargs.get("decode_responses", False)),
        encoding=kwargs.get("encoding", "utf-8"),
        errors=kwargs.get("encoding_errors", "strict"),
        connect_timeout=kwargs.get("socket_connect_timeout", 5.0),
        keepalive=keepalive,
        keepalive_options=dict(options or {}) if keepalive else {},
    )


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


class RespConnection(asyncio.Protocol):
    """One server connection; ``send`` returns a future per command, resolved with its reply in order.

    A lost connection fails every waiting future with ``ConnectionError``; ``closed`` is then True and the
    connection is not reused (the lane opens another).
    """

    def __init__(self, endpoint: Endpoint, on_lost: Callable[[RespConnection], None] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._reader = hiredis.Reader(**endpoint.reader_options())
        self._waiters: deque[asyncio.Future[Any]] = deque()
        self._transport: asyncio.Transport | None = None
        self._on_lost = on_lost
        self._lost: asyncio.Future[None] = self._loop.create_future()
        self._paused = False
        self._drained: asyncio.Future[None] | None = None
        self.closed = False

    # -- asyncio.Protocol ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's transports are not asyncio's classes

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        waiters = self._waiters
        while waiters:
            try:
                reply = reader.gets()
            except InvalidResponse as exc:
                self._fail(RedisConnectionError(f"Protocol error from the server: {exc}"))
                return
            if reply is _NEED_DATA:
                return
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(reply)
        if reader.has_data():  # a reply nobody waits for: the connection is out of step
            self._fail(RedisConnectionError("Unexpected reply from the server"))

    def eof_received(self) -> bool:
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._transport = None
        self._fail_waiters(RedisConnectionError("Connection closed by server."))
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        if not self._lost.done():
            self._lost.set_result(None)
        if self._on_lost is not None:
            self._on_lost(self)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    # -- requests -----------------------------------------------------------------------------
    def send(self, packed: bytes) -> asyncio.Future[Any]:
        """Write one packed command; the future gets its reply (an error reply as an exception instance)."""
        transport = self._transport
        if self.closed or transport is None:
            raise RedisConnectionError("Connection closed.")
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        transport.write(packed)
        return waiter

    def send_many(self, packed: Sequence[bytes]) -> list[asyncio.Future[Any]]:
        """Write several packed commands at once; one future per command, in order."""
        transport = self._transport
        if self.closed or transport is None:
            raise RedisConnectionError("Connection closed.")
        create = self._loop.create_future
        waiters = [create() for _ in packed]
        self._waiters.extend(waiters)
        transport.write(b"".join(packed))
        return waiters

    async def drain(self) -> None:
        """Wait while the transport's write buffer is over its high-water mark."""
        if self._paused and not self.closed:
            if self._drained is None or self._drained.done():
                self._drained = self._loop.create_future()
            await self._drained

    def close(self) -> None:
        """Close now: waiting requests fail with ``ConnectionError`` (a late reply would be out of step)."""
        self.closed = True
        self._fail_waiters(RedisConnectionError("Connection closed."))
        if self._transport is not None:
            self._transport.close()

    async def wait_closed(self) -> None:
        await asyncio.shield(self._lost)

    def _fail(self, exc: Exception) -> None:
        self._fail_waiters(exc)
        self.close()

    def _fail_waiters(self, exc: Exception) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_exception(exc)
                waiter.exception()  # retrieved: nobody may await a future of a cancelled stream


async def open_connection(
    endpoint: Endpoint, on_lost: Callable[[RespConnection], None] | None = None
) -> RespConnection:
    """Connect, authenticate, select the db. Connection failures raise redis-py's ``ConnectionError``
    (``AuthenticationError`` for a refused password) or ``TimeoutError``."""
    loop = asyncio.get_running_loop()
    conn = RespConnection(endpoint, on_lost)
    try:
        try:
            async with asyncio.timeout(endpoint.connect_timeout):
                if endpoint.path is not None:
                    await loop.create_unix_connection(lambda: conn, endpoint.path)
                else:
                    await loop.create_connection(lambda: conn, endpoint.host, endpoint.port)
                    _tune_socket(conn, endpoint)
                commands = endpoint.handshake()
                if commands:
                    replies = [await w for w in conn.send_many([pack_command(*c) for c in commands])]
                    for reply in replies:
                        if isinstance(reply, RedisError):
                            raise reply
                    if commands[0][0] == "AUTH" and replies[0] != "OK" and replies[0] != b"OK":
                        raise AuthenticationError("Invalid Username or Password")
        except TimeoutError as exc:
            raise RedisTimeoutError(f"Timeout connecting to {_where(endpoint)}") from exc
        except OSError as exc:
            raise RedisConnectionError(f"Error connecting to {_where(endpoint)}: {exc}") from exc
    except BaseException:
        conn.close()
        raise
    return conn


def _tune_socket(conn: RespConnection, endpoint: Endpoint) -> None:
    transport = conn._transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if endpoint.keepalive:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for option, value in endpoint.keepalive_options.items():
            sock.setsockopt(socket.SOL_TCP, option, value)


def _where(endpoint: Endpoint) -> str:
    return endpoint.path if endpoint.path is not None else f"{endpoint.host}:{endpoint.port}"
