"""Creating Redis/Valkey clients (single server or cluster) with tickr's defaults, and the script lane."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError

from tickr.store.resp import Endpoint, RespConnection, UnsupportedEndpoint, endpoint_of, open_connection, pack_command

__all__ = [
    "STREAM_CHUNK",
    "LanePool",
    "RedisTarget",
    "Script",
    "ScriptLane",
    "UnsupportedEndpoint",
    "connect",
    "is_cluster",
    "lane_endpoint",
    "pack_command",
    "parse_redis_url",
]

logger = logging.getLogger("tickr.store.lane")


CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """What a tickr Redis URL names: one server, a cluster (seed nodes), or a sentinel-watched primary.

    The forms (parsed here only, see docs/ha.md):

    - ``redis://``, ``rediss://``, ``unix://``: one server (a cluster when ``cluster`` is set, the seed in the URL);
    - ``redis+cluster://h1:p1,h2:p2[?options]`` (``rediss+cluster``: TLS): a Redis Cluster, seeded by any of the nodes;
    - ``redis+sentinel://h1:p1,h2:p2/<primary name>[?password=&sentinel_password=&username=&db=]``: the primary the
      sentinels name (``password``/``username`` for it, ``sentinel_password``/``sentinel_username`` for the sentinels).
    """

    kind: str  # "server" | "cluster" | "sentinel"
    url: str
    nodes: tuple[tuple[str, int], ...] = ()
    service: str = ""
    options: dict[str, str] = field(default_factory=dict)
    tls: bool = False


def parse_redis_url(url: str, *, cluster: bool = False) -> RedisTarget:
    """The target of ``url`` (``cluster``: a plain ``redis://`` URL names a cluster's seed node)."""
    from urllib.parse import parse_qsl, unquote, urlsplit

    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in (*CLUSTER_SCHEMES, *SENTINEL_SCHEMES):
        return RedisTarget("cluster" if cluster else "server", url)
    netloc, _, tail = rest.partition("/")
    path, _, query = tail.partition("?")
    if "?" in netloc:
        netloc, _, query = netloc.partition("?")
    options = dict(parse_qsl(query))
    userinfo, at, hosts = netloc.rpartition("@")
    if at:
        user, colon, password = userinfo.partition(":")
        if colon:
            options.setdefault("password", unquote(password))
            if user:
                options.setdefault("username", unquote(user))
        elif user:
            options.setdefault("password", unquote(user))
    nodes: list[tuple[str, int]] = []
    default_port = 26379 if scheme in SENTINEL_SCHEMES else 6379
    for item in filter(None, hosts.split(",")):
        parsed = urlsplit(f"//{item}")
        nodes.append((parsed.hostname or "127.0.0.1", parsed.port or default_port))
    if not nodes:
        raise ValueError(f"no host in {scheme}:// URL")
    tls = scheme.startswith("rediss")
    if scheme in SENTINEL_SCHEMES:
        service = unquote(path.strip("/"))
        if not service:
            raise ValueError("a redis+sentinel:// URL names its primary: redis+sentinel://host:port,.../<name>")
        return RedisTarget("sentinel", url, tuple(nodes), service, options, tls)
    if path.strip("/") not in ("", "0"):
        raise ValueError("a Redis Cluster has database 0 only")
    return RedisTarget("cluster", url, tuple(nodes), "", options, tls)


_INT_OPTIONS = {"db", "max_connections", "socket_timeout", "socket_connect_timeout", "health_check_interval"}


def _typed(options: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in options.items():
        out[key] = (
            float(value) if key in _INT_OPTIONS and "." in value else int(value) if key in _INT_OPTIONS else value
        )
    return out


def connect(url: str, *, cluster: bool = False, max_connections: int = 128, **options: Any) -> Redis:
    """An asyncio client for ``url`` (any form ``parse_redis_url`` reads); responses are decoded to ``str``.

    Cluster clients route each script by its first key's hash slot; tickr's keys of one
    queue share a slot, so the same scripts run on both. A sentinel URL gives a client of the
    primary the sentinels name, which asks them again after a connection to it fails.
    """
    target = parse_redis_url(url, cluster=cluster)
    options.setdefault("decode_responses", True)
    options.setdefault("health_check_interval", 30)
    # redis-py 8 reads with a 5 s socket timeout by default: it would cut a marker wait (BZPOPMIN
    # blocks up to wake_cap_seconds) and wraps every read in a timer. Dead peers are found by
    # TCP keepalive and the health check instead.
    options.setdefault("socket_timeout", None)
    options.setdefault("socket_connect_timeout", 5)
    if not url.startswith("unix:"):  # a unix socket connection takes no keepalive options
        options.setdefault("socket_keepalive", True)
    if target.kind == "cluster":
        if not target.nodes:
            return RedisCluster.from_url(url, **options)  # type: ignore[return-value]
        from redis.asyncio.cluster import ClusterNode

        extra = _typed(target.options)
        extra.pop("db", None)
        if target.tls:
            extra.setdefault("ssl", True)
        seeds = [ClusterNode(host, port) for host, port in target.nodes]
        return RedisCluster(startup_nodes=seeds, **{**options, **extra})  # type: ignore[return-value]
    if target.kind == "sentinel":
        from redis.asyncio.sentinel import Sentinel

        extra = _typed(target.options)
        sentinel_kwargs: dict[str, Any] = {"socket_connect_timeout": options["socket_connect_timeout"]}
        for key in ("sentinel_password", "sentinel_username"):
            if key in extra:
                sentinel_kwargs[key.removeprefix("sentinel_")] = extra.pop(key)
        if target.tls:
            extra.setdefault("ssl", True)
        sentinel = Sentinel(list(target.nodes), sentinel_kwargs=sentinel_kwargs)  # type: ignore[no-untyped-call]
        master = sentinel.master_for(target.service, redis_class=Redis, **{**options, **extra})
        return cast(Redis, master)
    # A blocking pool: a burst of concurrent calls waits for a connection instead of failing.
    pool = LanePool.from_url(url, max_connections=max_connections, timeout=None, **options)
    # The client owns its pool: closing the client closes the pool's connections and the lanes'.
    return Redis.from_pool(pool)


def is_cluster(redis: object) -> bool:
    """True for a Redis Cluster client (cross-queue reads fan out per node on it)."""
    return isinstance(redis, RedisCluster)


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


def lane_endpoint(redis: object) -> Endpoint:
    """Where the lane of ``redis`` connects; ``UnsupportedEndpoint`` (a ``ValueError``) says why it has none.

    The lane speaks what a client made by ``connect`` does over RESP2: host/port, unix socket, TLS
    (``rediss://``), AUTH with a password or a username and password, SELECT, a client name. Anything else
    (a cluster client, a pool that is not a ``LanePool``, RESP3, a credential provider, sentinel) has none.
    """
    if not isinstance(redis, Redis):
        raise UnsupportedEndpoint(f"a {type(redis).__name__} client, not a single-server redis.asyncio.Redis")
    pool = redis.connection_pool
    if not isinstance(pool, LanePool):
        raise UnsupportedEndpoint(f"a {type(pool).__name__}, not tickr's LanePool (made by connect())")
    return endpoint_of(pool.connection_class, pool.connection_kwargs)


_reasons_logged: set[str] = set()


@dataclass(slots=True)
class _Batch:
    """One ``stream``: its commands, those taken from ``source`` so far, and the replies received, in order."""

    source: AsyncIterator[Script]
    sent: list[Script] = field(default_factory=list)
    replies: list[Any] = field(default_factory=list)
    source_failed: bool = False  # ``source`` raised: the caller's error, never retried


def _keep_answered(waiters: list[asyncio.Future[Any]], replies: list[Any]) -> None:
    """Append the replies of ``waiters`` up to the first without one (or with a ``ConnectionError`` kind)."""
    for waiter in waiters:
        if not waiter.done() or waiter.cancelled() or waiter.exception() is not None:
            return
        reply = waiter.result()
        if isinstance(reply, RedisConnectionError):
            return
        replies.append(reply)


class ScriptLane:
    """EVALSHA on up to ``size`` connections of its own, skipping the client's per-call layers.

    redis-py spends ~50 µs of Python per command around a ~20 µs round trip (pool checkout, retries,
    observability hooks). The lane's connections are lean asyncio protocols (``resp.RespConnection``) that
    write packed RESP and parse replies with hiredis, opened with the client's settings (``lane_endpoint``)
    and closed when the client's ``LanePool`` closes. It offers the two methods a registered script calls,
    ``evalsha`` and ``script_load``, so ``AsyncScript`` runs on it as on a client.

    Whether a client gets a lane is decided once: ``for_client`` returns None for a client whose
    connections the lane does not speak (the caller then uses the client itself). Every call then goes
    one way: an idle connection, else a new one while fewer than ``size`` are open, else the next one
    given back (it waits: nothing goes to the client). A connection that is lost (``ConnectionError``)
    is closed and the call sent once more on a new one; a second failure raises. Cancelling a call
    closes its connection (its reply would come later, out of step).
    """

    def __init__(self, redis: Redis, size: int = 32) -> None:
        """A lane for ``redis``; ``UnsupportedEndpoint`` (a ``ValueError``) when it cannot have one."""
        if size < 1:
            raise ValueError(f"a lane holds at least one connection, not {size}")
        self._endpoint = lane_endpoint(redis)
        self.redis = redis
        self.size = size
        self._idle: list[RespConnection] = []
        self._conns: set[RespConnection] = set()  # this lane's, idle or in use, until closed or lost
        self._opening = 0  # connections being opened (they count towards ``size``)
        self._waiting: deque[asyncio.Future[RespConnection | None]] = deque()  # a connection, or None: open one
        # Connected and not yet lost, for every lane of the client: the pool closes them with the client.
        self._open: set[RespConnection] = cast(LanePool, redis.connection_pool).lane_connections

    @classmethod
    def for_client(cls, redis: object, size: int = 32) -> ScriptLane | None:
        """The lane of ``redis``, or None when its connections need what the lane does not speak (logged
        once per reason, at debug level)."""
        try:
            return cls(redis, size)  # type: ignore[arg-type]  # lane_endpoint checks the type
        except UnsupportedEndpoint as exc:
            reason = str(exc)
            if reason not in _reasons_logged:
                _reasons_logged.add(reason)
                logger.debug("no script lane for %s (scripts run on the client): %s", type(redis).__name__, reason)
            return None

    @property
    def endpoint(self) -> Endpoint:
        """Where and how the lane connects."""
        return self._endpoint

    @property
    def lean(self) -> bool:
        """Always True: a lane runs on its own connections (kept for callers that checked it)."""
        return True

    async def evalsha(self, sha: str, numkeys: int, *args: Any) -> Any:
        """``EVALSHA``; NOSCRIPT and other error replies raise as from the client."""
        return await self.call("EVALSHA", sha, numkeys, *args)

    async def script_load(self, script: str | bytes) -> str:
        sha = await self.call("SCRIPT", "LOAD", script)
        return sha.decode() if isinstance(sha, bytes) else str(sha)

    async def call(self, *command: Any) -> Any:
        """Any command whose reply needs no client-side parsing (EVALSHA, BZPOPMIN's raw list).

        Error replies raise as from the client. A lost connection: sent once more on a new connection.
        """
        packed = pack_command(*command)
        idle = self._idle
        conn = idle.pop() if idle and not idle[-1].closed else await self._take()
        for last in (False, True):
            if last:  # the first connection was lost (or refused the command as LOADING and the like)
                conn = await self._take(fresh=True)
            try:
                reply = await conn.send(packed)
            except RedisConnectionError:
                self._discard(conn)
                if last:
                    raise
                continue
            except UnicodeDecodeError:  # read, but not decodable (decode_responses): the connection is in step
                self._give_back(conn)
                raise
            except BaseException:  # cancelled: its reply would come out of step
                self._discard(conn)
                raise
            if isinstance(reply, RedisError):
                if not isinstance(reply, RedisConnectionError):
                    self._give_back(conn)  # an error reply leaves the connection in step
                    raise reply
                self._discard(conn)  # as redis-py: a ConnectionError kind drops the connection
                if last:
                    raise reply
                continue
            if self._waiting:
                self._give_back(conn)
            else:
                idle.append(conn)
            return reply
        raise AssertionError("unreachable")

    async def call_many(self, *commands: Sequence[Any]) -> list[Any]:
        """Several commands in one write on one connection (``EVALSHA`` then ``WAIT``): their replies, in order,
        error replies as exception instances (not raised). A lost connection: sent once more on a new one."""
        packed = [pack_command(*command) for command in commands]
        for last in (False, True):
            conn = await self._take(fresh=last)
            try:
                replies = [await waiter for waiter in conn.send_many(packed)]
            except RedisConnectionError:
                self._discard(conn)
                if last:
                    raise
                continue
            except BaseException:  # cancelled (or undecodable): out of step
                self._discard(conn)
                raise
            lost = next((r for r in replies if isinstance(r, RedisConnectionError)), None)
            if lost is not None:
                self._discard(conn)
                if last:
                    raise lost
                continue
            self._give_back(conn)
            return replies
        raise AssertionError("unreachable")

    async def stream(self, commands: AsyncIterable[Script]) -> list[Any]:
        """Run ``(script source, sha, numkeys, args)`` EVALSHAs in order on one connection, in one pass.

        Commands are sent in chunks as ``commands`` yields them, so building and packing overlap the
        server's work on what was already sent; one connection keeps the order. Error replies come
        back as exceptions in the list; commands that met NOSCRIPT are run again, in order, after
        loading their script. A lost connection: the commands without a reply are sent once more, in
        order, on a new connection, followed by the rest.
        """
        batch = _Batch(aiter(commands))
        idle = self._idle
        conn = idle.pop() if idle and not idle[-1].closed else await self._take()
        try:
            await self._stream_on(conn, batch)
        except RedisConnectionError:
            if batch.source_failed:  # the caller's own error, not the connection's
                raise
            await self._stream_on(await self._take(fresh=True), batch)
        return await self._reload(batch.replies, batch.sent)

    # -- streaming -------------------------------------------------------------------------
    async def _stream_on(self, conn: RespConnection, batch: _Batch) -> None:
        """Send ``batch.sent[len(batch.replies):]`` (unanswered on a lost connection), then the rest of its
        source; append the replies in order. On failure, the replies received before it are kept."""
        sent, replies = batch.sent, batch.replies
        start = len(replies)
        waiters: list[asyncio.Future[Any]] = []
        chunk: list[bytes] = []
        try:
            for _, sha, numkeys, args in sent[start:]:
                chunk.append(pack_command("EVALSHA", sha, numkeys, *args))
                if len(chunk) == STREAM_CHUNK:
                    waiters += conn.send_many(chunk)
                    chunk = []
                    await conn.drain()
            while True:
                try:
                    command = await anext(batch.source)
                except StopAsyncIteration:
                    break
                except BaseException:
                    batch.source_failed = True
                    raise
                sent.append(command)
                _, sha, numkeys, args = command
                chunk.append(pack_command("EVALSHA", sha, numkeys, *args))
                if len(chunk) == STREAM_CHUNK:
                    waiters += conn.send_many(chunk)
                    chunk = []
                    await conn.drain()
            if chunk:
                waiters += conn.send_many(chunk)
            for waiter in waiters:
                reply = await waiter
                if isinstance(reply, RedisConnectionError):  # as redis-py raises it: the connection is dropped
                    raise reply
                replies.append(reply)
        except BaseException:
            _keep_answered(waiters[len(replies) - start :], replies)  # answered before a failure while sending
            self._discard(conn)
            raise
        self._give_back(conn)

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

    # -- the connections ------------------------------------------------------------------------
    async def _take(self, fresh: bool = False) -> RespConnection:
        """An idle connection (``fresh``: never one that was idle), else a new one while fewer than ``size``
        are open, else the next one given back. Failing to connect raises (``ConnectionError``,
        ``AuthenticationError``, ``TimeoutError``)."""
        idle = self._idle
        while True:
            while idle and not fresh:
                conn = idle.pop()
                if not conn.closed:
                    return conn
                self._discard(conn)
            if len(self._conns) + self._opening < self.size:
                self._opening += 1
                return await self._connect()
            if idle:  # fresh, and every place taken: close an idle connection to open a new one
                self._discard(idle.pop())
                continue
            given = await self._wait_turn()
            if given is None:  # a place came free, kept for this call
                return await self._connect()
            if not given.closed:
                return given
            self._discard(given)

    async def _connect(self) -> RespConnection:
        """Open a connection in a place already counted in ``_opening``."""
        try:
            conn = await open_connection(self._endpoint, self._on_lost)
        except BaseException:
            self._opening -= 1
            self._wake()  # the place is free again: a waiting call tries (and fails, or connects) itself
            raise
        self._opening -= 1
        self._conns.add(conn)
        self._open.add(conn)
        return conn

    async def _wait_turn(self) -> RespConnection | None:
        """Wait for a connection given back, or None: a place came free and is kept for this call."""
        waiter: asyncio.Future[RespConnection | None] = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        try:
            return await waiter
        except BaseException:  # cancelled: pass on what was handed over meanwhile
            if waiter.done() and not waiter.cancelled():
                conn = waiter.result()
                if conn is not None:
                    self._give_back(conn)
                else:
                    self._opening -= 1
                    self._wake()
            raise

    def _give_back(self, conn: RespConnection) -> None:
        """A connection in step and free: to the first waiting call, else idle."""
        waiting = self._waiting
        while waiting:
            waiter = waiting.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self._idle.append(conn)

    def _wake(self) -> None:
        """A place came free: kept for the first waiting call, which opens a connection in it."""
        waiting = self._waiting
        while waiting:
            waiter = waiting.popleft()
            if not waiter.done():
                self._opening += 1
                waiter.set_result(None)
                return

    def _discard(self, conn: RespConnection) -> None:
        """Close a connection that is lost or out of step (error, cancellation); its place comes free."""
        conn.close()
        if conn in self._conns:
            self._conns.remove(conn)
            self._wake()

    def _on_lost(self, conn: RespConnection) -> None:
        """Closed by the server, by the client's pool or by the lane."""
        self._open.discard(conn)
        if conn in self._conns:
            self._conns.remove(conn)
            if conn in self._idle:
                self._idle.remove(conn)
            self._wake()
