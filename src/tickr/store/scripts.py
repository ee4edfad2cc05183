"""The Lua scripts: loaded from ``lua/`` once, registered by SHA, one typed method per script.

redis-py's registered scripts call EVALSHA and reload after NOSCRIPT (pipelines included).
Each method builds the script's KEYS from ``QueueKeys`` so the key contract lives here only.
"""

from __future__ import annotations

import asyncio
import re
from functools import cache
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterPipeline, PipelineCommand, RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MovedError,
    NoScriptError,
    RedisError,
    TryAgainError,
)
from redis.exceptions import (
    ConnectionError as RedisConnectionError,
)
from redis.exceptions import (
    TimeoutError as RedisTimeoutError,
)

from tickr.core.errors import ReplicationShortfall
from tickr.store.connection import ScriptLane
from tickr.store.keys import QueueKeys, ScheduleKeys

SCRIPT_NAMES = (
    "enqueue",
    "promote",
    "dequeue",
    "extend",
    "ack",
    "fail",
    "reap",
    "release_lapsed",
    "release",
    "cancel",
    "replay",
    "update",
    "schedule_save",
    "schedule_fire",
    "schedule_delete",
    "schedule_due",
    "unrunnable",
    "events_ack",
    "events_status",
    "queue_gauges",
)
# Scripts never followed by WAIT: those that write nothing, and the lease-side ones whose loss in a failover is
# harmless (a lease or a promotion the new primary lacks only makes the job run again, at least once as ever).
# A dequeue refused for want of a replica would strand the leases it took (its caller never sees them) and
# burn an attempt of each job at every try until a replica is back.
READ_ONLY = frozenset({"events_status", "queue_gauges", "schedule_due"})
NO_WAIT = READ_ONLY | {"dequeue", "extend", "promote"}
CLUSTER_TRIES = 4  # sends of EVALSHA + WAIT to a slot's primary, the slot map read again between them
_REDIRECTS = (AskError, ClusterDownError, MovedError, TryAgainError, RedisConnectionError, RedisTimeoutError)
_INCLUDE_RE = re.compile(r'^--- @include "([a-z_]+)"\s*$', re.MULTILINE)

Client = Redis | Pipeline


@cache
def lua_source(name: str) -> str:
    """The text of script ``name`` with its ``--- @include`` lines expanded (each include once)."""
    root = resources.files("tickr.store") / "lua"
    text = (root / f"{name}.lua").read_text()
    seen: set[str] = set()

    def expand(match: re.Match[str]) -> str:
        include = match.group(1)
        if include in seen:
            return ""
        seen.add(include)
        return _INCLUDE_RE.sub(expand, (root / "include" / f"{include}.lua").read_text())

    return _INCLUDE_RE.sub(expand, text)


class Scripts:
    """Every tickr Lua script, registered on one client.

    ``min_replicas`` > 0: every state-changing script but the lease side (``NO_WAIT``) is followed by
    ``WAIT min_replicas timeout_ms`` on the
    same connection, in the same write (one round trip), and fewer replicas acknowledging raises
    ``ReplicationShortfall`` (the script's write stands on the primary). Scripts queued on a caller's
    pipeline are covered by the caller (``add_wait`` / ``check_wait``).
    """

    def __init__(self, redis: Redis, min_replicas: int = 0, timeout_ms: int = 500) -> None:
        self._redis = redis
        self.min_replicas = min_replicas
        self.timeout_ms = timeout_ms
        self._registered: dict[str, AsyncScript] = {
            name: redis.register_script(lua_source(name)) for name in SCRIPT_NAMES
        }

    async def _run(self, name: str, keys: list[str], args: list[Any], client: Client | None) -> Any:
        target = client or self._redis
        if self.min_replicas > 0 and name not in NO_WAIT and not isinstance(target, Pipeline | ClusterPipeline):
            return await self._run_waited(name, keys, args, target)
        return await self._registered[name](keys=keys, args=args, client=target)

    # -- acknowledged means kept ------------------------------------------------------------------
    def wait_command(self) -> tuple[str, int, int]:
        return ("WAIT", self.min_replicas, self.timeout_ms)

    def check_wait(self, acked: Any) -> None:
        """Raise ``ReplicationShortfall`` when WAIT's reply counts fewer replicas than ``min_replicas``."""
        if isinstance(acked, BaseException):
            raise acked
        if int(acked) < self.min_replicas:
            raise ReplicationShortfall(int(acked), self.min_replicas, self.timeout_ms)

    def add_wait(self, pipe: Any) -> bool:
        """Queue WAIT at the end of a caller's (non-cluster) pipeline of writes; True when queued (the caller
        pops the last reply and passes it to ``check_wait``)."""
        if self.min_replicas <= 0 or isinstance(pipe, ClusterPipeline):
            return False
        pipe.execute_command(*self.wait_command())
        return True

    async def _run_waited(self, name: str, keys: list[str], args: list[Any], target: Any) -> Any:
        """EVALSHA and WAIT in one write on one connection: the lane, a cluster node (the key's), or a pipeline."""
        script = self._registered[name]
        evalsha = ("EVALSHA", script.sha, len(keys), *keys, *args)
        for attempt in (1, 2):
            if isinstance(target, ScriptLane):
                reply, acked = await target.call_many(evalsha, self.wait_command())
            elif isinstance(target, RedisCluster):
                reply, acked = await self._on_cluster(target, keys[0], evalsha)
            else:
                pipe = target.pipeline(transaction=False)
                pipe.execute_command(*evalsha)
                pipe.execute_command(*self.wait_command())
                reply, acked = await pipe.execute(raise_on_error=False)
            if isinstance(reply, NoScriptError) and attempt == 1:
                await target.script_load(script.script)
                continue
            if isinstance(reply, BaseException):
                raise reply
            self.check_wait(acked)
            return reply
        raise AssertionError("unreachable")

    async def _on_cluster(self, cluster: RedisCluster, key: str, evalsha: tuple[Any, ...]) -> list[Any]:
        """EVALSHA and WAIT pipelined to the primary of ``key``'s slot, on one of its connections (WAIT counts
        the replicas that have that connection's writes; on another connection it would count nothing).

        A redirect (``MOVED``: a failover or resharding), a refusal during a failover or a lost node: the slot
        map is read again and the pair sent again, ``CLUSTER_TRIES`` times in all, then the error is raised
        (``StoreUnavailable`` at the store's edge)."""
        error: BaseException | None = None
        for attempt in range(CLUSTER_TRIES):
            if attempt:
                await asyncio.sleep(0.1 * attempt)
                try:
                    await cluster.nodes_manager.initialize()
                except (RedisError, OSError) as exc:
                    error = exc
                    continue
            node = cluster.get_node_from_key(key)
            if node is None:
                error = ClusterDownError(f"no node serves the slot of {key}")
                continue
            commands = [PipelineCommand(0, *evalsha), PipelineCommand(1, *self.wait_command())]
            try:
                await node.execute_pipeline(commands)
            except (RedisError, OSError) as exc:
                error = exc
                continue
            first = commands[0].result
            if isinstance(first, _REDIRECTS):
                error = first
                continue
            return [first, commands[1].result]
        assert error is not None
        raise error

    async def enqueue(self, k: QueueKeys, args: list[Any], client: Client | None = None) -> Any:
        return await self._run("enqueue", self.enqueue_keys(k), args, client)

    @staticmethod
    def enqueue_keys(k: QueueKeys) -> list[str]:
        return [*k.ready_all, k.scheduled, k.marker, k.events, k.stats]

    def sha(self, name: str) -> str:
        """The SHA1 of script ``name`` (for callers that stream EVALSHAs themselves)."""
        return str(self._registered[name].sha)

    async def promote(self, k: QueueKeys, args: list[Any], client: Client | None = None) -> Any:
        return await self._run("promote", [*k.ready_all, k.scheduled, k.marker], args, client)

    async def dequeue(self, k: QueueKeys, worker_id: str, args: list[Any], client: Client | None = None) -> Any:
        return await self._run("dequeue", self.dequeue_keys(k, worker_id), args, client)

    @staticmethod
    def dequeue_keys(k: QueueKeys, worker_id: str) -> list[str]:
        keys = [*k.ready_all, k.scheduled, k.active, k.marker, k.events, k.stats, k.paused]
        return [*keys, k.worker_types(worker_id), k.parked, k.beats]

    async def unrunnable(self, k: QueueKeys, args: list[Any], client: Client | None = None) -> Any:
        return await self._run("unrunnable", [k.parked, k.types, k.dead, k.events, k.stats], args, client)

    async def extend(self, k: QueueKeys, args: list[Any], client: Client | None = None) -> Any:
        return await self._run("extend", [k.active, k.stats], args, client)

    async def ack(self, k: QueueKeys, args: list[Any], client: Client | None = None) -> Any:
        return await self._run("ack", self.ack_keys(k), args, client)

    @staticmethod
    def ack_keys(k: QueueKeys) -> list[str]:
        return [k.active, k.done, k.events, k.stats]

    async def fail(self, k: QueueKeys, args: list[Any], client: Client | None = None) -> Any:
        keys = [k.active, k.scheduled, k.dead, k.marker, k.events, k.stats]
        return await self._run("fail", keys, args, client)

    async def reap(self, k: QueueKeys, args: list[Any], client: Client | None = None) -> Any:
        keys = [k.active, *k.ready_all, k.dead, k.done, k.marker, k.events, k.stats]
        return await self._run("reap", keys, args, client)

    async def release_lapsed(self, k: QueueKeys, args: list[Any], client: Client | None = None) -> Any:
        keys = [k.active, *k.ready_all, k.dead, k.done, k.marker, k.events, k.stats, k.beats]
        return await self._run("release_lapsed", keys, args, client)

    async def release(self, k: QueueKeys, args: list[Any], client: Client | None = None) -> Any:
        keys = [k.active, *k.ready_all, k.done, k.marker, k.events, k.stats]
        return await self._run("release", keys, args, client)

    async def cancel(self, k: QueueKeys, job_id: str, args: list[Any], client: Client | None = None) -> Any:
        keys = [k.job(job_id), *k.ready_all, k.scheduled, k.done, k.events, k.stats]
        return await self._run("cancel", keys, args, client)

    async def replay(self, k: QueueKeys, job_id: str, args: list[Any], client: Client | None = None) -> Any:
        keys = [k.job(job_id), *k.ready_all, k.dead, k.done, k.marker, k.events, k.stats]
        return await self._run("replay", keys, args, client)

    async def update(self, k: QueueKeys, job_id: str, args: list[Any], client: Client | None = None) -> Any:
        keys = [k.job(job_id), *k.ready_all, k.scheduled, k.marker, k.events, k.stats]
        return await self._run("update", keys, args, client)

    async def schedule_save(
        self, sk: ScheduleKeys, schedule_id: str, args: list[Any], client: Client | None = None
    ) -> Any:
        keys = [sk.schedule(schedule_id), sk.due, sk.all, sk.notify, sk.events, sk.stats]
        return await self._run("schedule_save", keys, args, client)

    async def schedule_fire(
        self, sk: ScheduleKeys, schedule_id: str, args: list[Any], client: Client | None = None
    ) -> Any:
        keys = [sk.schedule(schedule_id), sk.due, sk.fired(schedule_id)]
        return await self._run("schedule_fire", keys, args, client)

    async def schedule_delete(
        self, sk: ScheduleKeys, schedule_id: str, args: list[Any], client: Client | None = None
    ) -> Any:
        keys = [sk.schedule(schedule_id), sk.due, sk.notify, sk.events, sk.stats]
        return await self._run("schedule_delete", keys, args, client)

    async def events_ack(self, stream: str, args: list[Any], client: Client | None = None) -> Any:
        return await self._run("events_ack", [stream], args, client)

    async def events_status(self, stream: str, stats: str, args: list[Any], client: Client | None = None) -> Any:
        return await self._run("events_status", [stream, stats], args, client)

    async def queue_gauges(self, k: QueueKeys, args: list[Any], client: Client | None = None) -> Any:
        return await self._run("queue_gauges", [*k.ready_all, k.scheduled, k.active, k.dead], args, client)

    async def schedule_due(self, sk: ScheduleKeys, args: list[Any], client: Client | None = None) -> Any:
        return await self._run("schedule_due", [sk.due], args, client)
