"""The Lua scripts: loaded from ``lua/`` once, registered by SHA, one typed method per script.

redis-py's registered scripts call EVALSHA and reload after NOSCRIPT (pipelines included).
Each method builds the script's KEYS from ``QueueKeys`` so the key contract lives here only.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript

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
    """Every tickr Lua script, registered on one client."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._registered: dict[str, AsyncScript] = {
            name: redis.register_script(lua_source(name)) for name in SCRIPT_NAMES
        }

    async def _run(self, name: str, keys: list[str], args: list[Any], client: Client | None) -> Any:
        return await self._registered[name](keys=keys, args=args, client=client or self._redis)

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
        keys = [*k.ready_all, k.scheduled, k.active, k.marker, k.events, k.stats, k.paused]
        keys += [k.worker_types(worker_id), k.parked]
        return await self._run("dequeue", keys, args, client)

    async def unrunnable(self, k: QueueKeys, args: list[Any], client: Client | None = None) -> Any:
        return await self._run("unrunnable", [k.parked, k.types, k.dead, k.events, k.stats], args, client)

    async def extend(self, k: QueueKeys, args: list[Any], client: Client | None = None) -> Any:
        return await self._run("extend", [k.active, k.stats], args, client)

    async def ack(self, k: QueueKeys, args: list[Any], client: Client | None = None) -> Any:
        return await self._run("ack", [k.active, k.done, k.events, k.stats], args, client)

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
