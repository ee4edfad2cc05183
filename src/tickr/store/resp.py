"""A lean RESP2 connection for the script lane: an asyncio ``Protocol`` that writes packed commands and
parses replies with ``hiredis.Reader``.

Only public APIs: ``hiredis`` and redis-py's ``redis.exceptions``. Replies are decoded as redis-py decodes
them (``decode_responses``: bulk strings to ``str``, integers to ``int``, arrays to lists, nil to None);
an error reply comes back as the exception instance redis-py would raise for it (``error_from_reply``:
``NoScriptError`` for NOSCRIPT, ``BusyLoadingError`` for LOADING, ``ResponseError`` otherwise...), for the
caller to raise or keep. Replies are matched to requests first in, first out.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import hiredis
from redis import exceptions as redis_exceptions
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.exceptions import (
    AskError,
    AuthenticationError,
    AuthenticationWrongNumberOfArgsError,
    BusyLoadingError,
    ClusterCrossSlotError,
    ClusterDownError,
    ExecAbortError,
    InvalidResponse,
    MasterDownError,
    ModuleError,
    MovedError,
    NoPermissionError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = [
    "Endpoint",
    "RespConnection",
    "UnsupportedEndpoint",
    "endpoint_of",
    "error_from_reply",
    "open_connection",
    "pack_command",
]

_NEED_DATA = object()  # hiredis' "not enough data yet" marker (a reply is never this object)


# -- error replies -----------------------------------------------------------------------------------
def _recent(*pairs: tuple[str, str]) -> dict[str, type[RedisError]]:
    """``{message: class}`` for the classes this redis-py version has (they came in recent versions)."""
    return {message: getattr(redis_exceptions, name) for message, name in pairs if hasattr(redis_exceptions, name)}


# The exception class of an error reply, by its first word, as redis-py's parsers map them (redis-py 5-8).
# A dict: the class by the rest of the message, ResponseError for any other message.
_ERROR_CLASSES: dict[str, type[RedisError] | dict[str, type[RedisError]]] = {
    "ERR": {
        "max number of clients reached": RedisConnectionError,
        "invalid password": AuthenticationError,
        "wrong number of arguments for 'auth' command": AuthenticationWrongNumberOfArgsError,
        "wrong number of arguments for 'AUTH' command": AuthenticationWrongNumberOfArgsError,
        "AUTH <password> called without any password configured for the default user. "
        "Are you sure your configuration is correct?": AuthenticationError,
        "Client sent AUTH, but no password is set": AuthenticationError,
        "Error loading the extension. Please check the server logs.": ModuleError,
        "Error unloading module: the module exports one or more module-side data types, can't unload": ModuleError,
        "Error unloading module: no such module with that name": ModuleError,
        "Error unloading module: operation not possible.": ModuleError,
        **_recent(
            ("problem with LDAP service", "ExternalAuthProviderError"),
            ("no such fieldset", "NoSuchFieldsetError"),
        ),
    },
    "OOM": OutOfMemoryError,
    "WRONGPASS": AuthenticationError,
    "EXECABORT": ExecAbortError,
    "LOADING": BusyLoadingError,
    "NOSCRIPT": NoScriptError,
    "READONLY": ReadOnlyError,
    "NOAUTH": AuthenticationError,
    "NOPERM": NoPermissionError,
    "ASK": AskError,
    "TRYAGAIN": TryAgainError,
    "MOVED": MovedError,
    "CLUSTERDOWN": ClusterDownError,
    "CROSSSLOT": ClusterCrossSlotError,
    "MASTERDOWN": MasterDownError,
}


def error_from_reply(message: str) -> RedisError:
    """The exception redis-py raises for the error reply ``message`` (hiredis' ``replyError``).

    As redis-py: a known first word is stripped from the message and picks the class; any other reply is a
    ``ResponseError`` with the whole message.
    """
    code = message.split(" ")[0]
    kind = _ERROR_CLASSES.get(code)
    if kind is None:
        return ResponseError(message)
    rest = message[len(code) + 1 :]
    if isinstance(kind, dict):
        kind = kind.get(rest, ResponseError)
    try:
        return kind(rest, status_code=code)  # redis-py >= 7 keeps the code
    except TypeError:
        return kind(rest)
    except ValueError:  # a MOVED/ASK reply that does not parse as "<slot> <host>:<port>"
        return ResponseError(message)


# -- where and how to connect ------------------------------------------------------------------------
_CERT_REQS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}


def default_keepalive_options() -> dict[int, int]:
    """TCP keepalive when the client enables it without options: redis-py's defaults (idle 30 s, then
    probes 5 s apart, 3 of them), for the options this platform has."""
    idle = getattr(socket, "TCP_KEEPIDLE", None)
    if idle is None:
        idle = getattr(socket, "TCP_KEEPALIVE", None)  # macOS' name for it
    wanted = ((idle, 30), (getattr(socket, "TCP_KEEPINTVL", None), 5), (getattr(socket, "TCP_KEEPCNT", None), 3))
    return {option: value for option, value in wanted if option is not None}


class UnsupportedEndpoint(ValueError):
    """The pool's connections need what the lane does not speak; the message says what."""


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
    tls: ssl.SSLContext | None = None  # rediss://

    def reader_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "protocolError": InvalidResponse,
            "replyError": error_from_reply,
            "notEnoughData": _NEED_DATA,
        }
        if self.decode:
            options["encoding"] = self.encoding
            options["errors"] = self.errors
        return options

    def handshake(self) -> list[tuple[Any, ...]]:
        """The commands a new connection sends before use (as redis-py's ``on_connect``, RESP2 only)."""
        commands: list[tuple[Any, ...]] = []
        if self.username:
            commands.append(("AUTH", self.username, self.password or ""))
        elif self.password:
            commands.append(("AUTH", self.password))
        if self.client_name:
            commands.append(("CLIENT", "SETNAME", self.client_name))
        if self.db:
            commands.append(("SELECT", self.db))
        return commands

    def where(self) -> str:
        return self.path if self.path is not None else f"{self.host}:{self.port}"


def endpoint_of(kind: type, kwargs: Mapping[str, Any]) -> Endpoint:
    """The endpoint of a pool's connections (their class and kwargs): host/port, unix socket, TLS, AUTH,
    SELECT, client name. Raises ``UnsupportedEndpoint`` for what the lane does not speak: RESP3, a
    credential provider, a connect callback (sentinel), any other connection class or socket type.

    No ``protocol`` given: redis-py 8 speaks RESP3 but returns RESP2-shaped replies (``legacy_responses``),
    which are what the lane's RESP2 replies are; without ``legacy_responses`` they differ, so no lane."""
    if kind not in (Connection, SSLConnection, UnixDomainSocketConnection):
        raise UnsupportedEndpoint(f"connection class {kind.__module__}.{kind.__qualname__}")
    protocol = kwargs.get("protocol")
    if protocol is not None and str(protocol) != "2":
        raise UnsupportedEndpoint(f"RESP{protocol} (the lane speaks RESP2)")
    if protocol is None and kwargs.get("legacy_responses") is False:
        raise UnsupportedEndpoint("RESP3 replies without legacy_responses (the lane speaks RESP2)")
    if kwargs.get("credential_provider") is not None:
        raise UnsupportedEndpoint("a credential provider")
    if kwargs.get("redis_connect_func") is not None:
        raise UnsupportedEndpoint("a connect callback (sentinel)")
    where: dict[str, Any]
    if kind is UnixDomainSocketConnection:
        if not kwargs.get("path"):
            raise UnsupportedEndpoint("a unix socket connection without a path")
        where = {"path": str(kwargs["path"])}
    else:
        if kwargs.get("socket_type", 0) not in (0, socket.SOCK_STREAM):
            raise UnsupportedEndpoint(f"socket type {kwargs['socket_type']}")
        where = {"host": kwargs.get("host") or "localhost", "port": int(kwargs.get("port") or 6379)}
        if kind is SSLConnection:
            where["tls"] = tls_context(kwargs)
    keepalive = kind is not UnixDomainSocketConnection and bool(kwargs.get("socket_keepalive", False))
    options = kwargs.get("socket_keepalive_options", default_keepalive_options()) if keepalive else None
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
        keepalive_options=dict(options or {}),
    )


def tls_context(kwargs: Mapping[str, Any]) -> ssl.SSLContext:
    """The ``SSLContext`` an ``SSLConnection`` made with these kwargs uses (its defaults: a certificate is
    required and its host name checked). Raises ``UnsupportedEndpoint`` when it cannot be made."""
    reqs = kwargs.get("ssl_cert_reqs", "required")
    if reqs is None:
        reqs = ssl.CERT_NONE
    elif isinstance(reqs, str):
        if reqs not in _CERT_REQS:
            raise UnsupportedEndpoint(f"ssl_cert_reqs={reqs!r}")
        reqs = _CERT_REQS[reqs]
    try:
        context = ssl.create_default_context()
        context.check_hostname = bool(kwargs.get("ssl_check_hostname", True)) and reqs != ssl.CERT_NONE
        context.verify_mode = reqs
        for flag in kwargs.get("ssl_include_verify_flags") or ():
            context.verify_flags |= flag
        for flag in kwargs.get("ssl_exclude_verify_flags") or ():
            context.verify_flags &= ~flag
        certfile, keyfile = kwargs.get("ssl_certfile"), kwargs.get("ssl_keyfile")
        if certfile:
            context.load_cert_chain(certfile=certfile, keyfile=keyfile, password=kwargs.get("ssl_password"))
        elif keyfile:
            raise ValueError("ssl_keyfile without ssl_certfile")
        ca_certs, ca_path, ca_data = kwargs.get("ssl_ca_certs"), kwargs.get("ssl_ca_path"), kwargs.get("ssl_ca_data")
        if ca_certs or ca_path or ca_data:
            context.load_verify_locations(cafile=ca_certs, capath=ca_path, cadata=ca_data)
        if kwargs.get("ssl_min_version") is not None:
            context.minimum_version = kwargs["ssl_min_version"]
        if kwargs.get("ssl_ciphers") is not None:
            context.set_ciphers(kwargs["ssl_ciphers"])
    except (OSError, ValueError, TypeError) as exc:  # ssl.SSLError is an OSError
        raise UnsupportedEndpoint(f"TLS settings that do not load ({exc})") from exc
    return context


# -- commands ----------------------------------------------------------------------------------------
def pack_command(*args: str | int | float | bytes) -> bytes:
    """One command in RESP, as redis-py's ``pack_command`` makes it for the str/int/float/bytes scripts take:
    hiredis's packer (C, the one redis-py uses when hiredis is installed), twice as fast as building it in
    Python. ``TypeError`` for anything else (None, bool), ``UnicodeEncodeError`` for a lone surrogate."""
    # The stub types the argument as a one-item tuple; it takes any number of items.
    return cast(bytes, hiredis.pack_command(args))  # type: ignore[arg-type]


# -- the connection ----------------------------------------------------------------------------------
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
            except UnicodeDecodeError as exc:  # hiredis read the reply but could not decode it: still in step
                waiter = waiters.popleft()
                if not waiter.done():
                    waiter.set_exception(exc)
                continue
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
    """Connect (TLS for ``rediss://``), authenticate, name, select the db. Failures raise redis-py's
    ``ConnectionError`` (``AuthenticationError`` for refused credentials) or ``TimeoutError``."""
    loop = asyncio.get_running_loop()
    conn = RespConnection(endpoint, on_lost)
    try:
        try:
            async with asyncio.timeout(endpoint.connect_timeout):
                if endpoint.path is not None:
                    await loop.create_unix_connection(lambda: conn, endpoint.path)
                else:
                    await loop.create_connection(lambda: conn, endpoint.host, endpoint.port, ssl=endpoint.tls)
                    _tune_socket(conn, endpoint)
                commands = endpoint.handshake()
                if commands:
                    replies = [await w for w in conn.send_many([pack_command(*c) for c in commands])]
                    for reply in replies:
                        if isinstance(reply, RedisError):
                            raise reply
                    if commands[0][0] == "AUTH" and replies[0] not in ("OK", b"OK"):
                        raise AuthenticationError("Invalid Username or Password")
        except TimeoutError as exc:
            raise RedisTimeoutError(f"Timeout connecting to {endpoint.where()}") from exc
        except OSError as exc:  # refused, unreachable, a TLS handshake or certificate failure
            raise RedisConnectionError(f"Error connecting to {endpoint.where()}: {exc}") from exc
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
            sock.setsockopt(socket.IPPROTO_TCP, option, value)
