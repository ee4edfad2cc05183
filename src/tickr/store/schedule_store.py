"""Recurring-job schedules in Redis: the ``Schedule`` hash codec and ``ScheduleStore``.

All keys live under ``<prefix>:{schedules}:`` (one cluster slot); job hashes are read through their queue's keys.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from redis.asyncio.cluster import RedisCluster

from tickr.core.job import Job
from tickr.core.schedule import FiredRun, FireRequest, JobTemplate, Misfire, Schedule
from tickr.store import codec
from tickr.store.boundary import store_boundary
from tickr.store.keys import ScheduleKeys
from tickr.store.replies import ScheduleDeleteCode, ScheduleFireCode, ScheduleSaveCode

if TYPE_CHECKING:
    from tickr.store.store import EnqueueResult, RedisStore

FIRED_KEEP = 1_000  # newest runs kept in a schedule's history zset
NOTIFY_KEEP = 64  # newest wake-up tokens kept in the notify zset


_BOOL = {"1": True, "0": False}


def _opt_int(value: str | None) -> int | None:
    return int(value) if value not in (None, "") else None


def _opt_str(value: str | None) -> str | None:
    return value if value not in (None, "") else None


def schedule_fields(s: Schedule) -> list[str]:
    """The definition fields written by ``schedule_save`` (state and counters are the scripts' business)."""
    return [
        "cron",
        s.cron,
        "timezone",
        s.timezone,
        "template",
        codec.dumps(s.template.to_dict()),
        "misfire",
        s.misfire.value,
        "max_catch_up",
        str(s.max_catch_up),
        "overlap",
        "1" if s.overlap else "0",
        "is_active",
        "1" if s.is_active else "0",
        "deleted",
        "1" if s.deleted else "0",
        "deleted_at",
        "" if s.deleted_at is None else str(s.deleted_at),
        "name",
        s.name or "",
        "description",
        s.description or "",
    ]


def schedule_from_hash(schedule_id: str, data: dict[str, str]) -> Schedule:
    """Rebuild a ``Schedule`` from its hash (``HGETALL`` decoded to str)."""
    return Schedule(
        id=schedule_id,
        cron=data["cron"],
        template=JobTemplate.from_dict(codec.loads(data["template"])),
        timezone=data.get("timezone", "UTC"),
        misfire=Misfire(data.get("misfire", "skip")),
        max_catch_up=int(data.get("max_catch_up", 10)),
        overlap=_BOOL.get(data.get("overlap", "1"), True),
        is_active=_BOOL.get(data.get("is_active", "1"), True),
        deleted=_BOOL.get(data.get("deleted", "0"), False),
        name=_opt_str(data.get("name")),
        description=_opt_str(data.get("description")),
        version=int(data.get("version", 0)),
        created_at=_opt_int(data.get("created_at")),
        updated_at=_opt_int(data.get("updated_at")),
        deleted_at=_opt_int(data.get("deleted_at")),
        next_run_at=_opt_int(data.get("next_run_at")),
        last_run_at=_opt_int(data.get("last_run_at")),
        last_fired_at=_opt_int(data.get("last_fired_at")),
        last_job_id=_opt_str(data.get("last_job_id")),
        last_job_queue=_opt_str(data.get("last_job_queue")),
        fired=int(data.get("fired", 0)),
        skipped_overlap=int(data.get("skipped_overlap", 0)),
        misfired=int(data.get("misfired", 0)),
    )


def _strs(data: dict[Any, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in data.items()}


def _blocking_cap(redis: Any) -> float:
    """Longest block that stays inside the client's socket timeout (redis-py 8 defaults it to 5 s)."""
    kwargs = getattr(getattr(redis, "connection_pool", None), "connection_kwargs", None) or {}
    socket_timeout = kwargs.get("socket_timeout", 5.0)
    return max(0.1, float(socket_timeout) - 1.0) if socket_timeout else 3600.0


@store_boundary
class ScheduleStore:
    """The door to the schedule keys. Shares the ``RedisStore``'s client, scripts, prefix and clock."""

    def __init__(self, store: RedisStore) -> None:
        self.store = store
        self.redis = store.redis
        self.keys = ScheduleKeys(store.config.prefix)
        self._block_cap = _blocking_cap(store.redis)
        self._cluster = isinstance(store.redis, RedisCluster)

    async def now_ms(self) -> int:
        """The current time: the injected test clock, else the Redis server's ``TIME``."""
        return (await self.due_now(0))[0]

    # -- definitions --------------------------------------------------------------------------
    async def save(
        self, schedule: Schedule, *, mode: str, expected_version: int = 0, next_run_at: int | None = None
    ) -> tuple[ScheduleSaveCode, int]:
        """Run ``schedule_save``: ``(code, version)`` as documented in the script header."""
        args = [
            schedule.id,
            self.store.clock_arg(),
            mode,
            expected_version,
            -1 if next_run_at is None else next_run_at,
            NOTIFY_KEEP,
            self.store.config.events_maxlen,
            *schedule_fields(schedule),
        ]
        code, version = await self.store.scripts.schedule_save(self.keys, schedule.id, args)
        return ScheduleSaveCode(int(code)), int(version)

    async def delete(self, schedule_id: str) -> ScheduleDeleteCode:
        """Soft-delete a schedule."""
        args = [schedule_id, self.store.clock_arg(), NOTIFY_KEEP, self.store.config.events_maxlen]
        code, _ = await self.store.scripts.schedule_delete(self.keys, schedule_id, args)
        return ScheduleDeleteCode(int(code))

    async def get(self, schedule_id: str) -> Schedule | None:
        data = await self.redis.hgetall(self.keys.schedule(schedule_id))
        return schedule_from_hash(schedule_id, _strs(data)) if data else None

    async def get_many(self, ids: list[str]) -> list[Schedule | None]:
        pipe = self.redis.pipeline(transaction=False)
        for schedule_id in ids:
            pipe.hgetall(self.keys.schedule(schedule_id))
        rows = await pipe.execute()
        return [schedule_from_hash(i, _strs(d)) if d else None for i, d in zip(ids, rows, strict=True)]

    async def ids(self, offset: int, count: int) -> list[str]:
        """Schedule ids in creation order, ``count`` of them from ``offset``."""
        return [str(m) for m in await self.redis.zrange(self.keys.all, offset, offset + count - 1)]

    # -- firing -------------------------------------------------------------------------------
    async def due_now(self, limit: int) -> tuple[int, list[tuple[str, int]]]:
        """In one round trip: the current time and the ``limit`` earliest ``(id, next fire ms)`` of the due zset."""
        reply = await self.store.scripts.schedule_due(self.keys, [self.store.clock_arg(), limit])
        rows = [(str(reply[i]), int(float(reply[i + 1]))) for i in range(1, len(reply), 2)]
        return int(reply[0]), rows

    async def fire(self, request: FireRequest) -> tuple[bool, int | None]:
        """Run ``schedule_fire``: ``(advanced, next_run_at)``; False when another scheduler (or an edit) won."""
        return (await self.fire_many([request]))[0]

    async def fire_many(self, requests: list[FireRequest]) -> list[tuple[bool, int | None]]:
        """``fire`` for several schedules in one round trip (a pipeline, each script on its own)."""
        pipe = None if self._cluster else self.redis.pipeline(transaction=False)
        calls = []
        for r in requests:
            args: list[str | int] = [
                r.schedule_id,
                self.store.clock_arg(),
                r.expected_next,
                r.new_next,
                FIRED_KEEP,
                r.skipped_overlap,
                r.misfired,
            ]
            for run in r.runs:
                args += [run.fire_ms, run.queue, run.job_id]
            calls.append(self.store.scripts.schedule_fire(self.keys, r.schedule_id, args, pipe))
        if pipe is None:  # redis-py refuses scripts in cluster pipelines: run them side by side instead
            replies = await asyncio.gather(*calls)
        else:
            for call in calls:
                await call
            waited = self.store.scripts.add_wait(pipe)
            replies = await pipe.execute()
            if waited:
                self.store.scripts.check_wait(replies.pop())
        return [
            (int(code) == ScheduleFireCode.ADVANCED, None if int(stored) < 0 else int(stored))
            for code, stored in replies
        ]

    async def enqueue_jobs(self, jobs: list[Job]) -> list[EnqueueResult]:
        """Enqueue ``jobs`` now, in one round trip (side by side on a cluster, where pipelines refuse scripts)."""
        if not jobs:
            return []
        if self._cluster:
            return list(await asyncio.gather(*(self.store.enqueue(job) for job in jobs)))
        return await self.store.enqueue_many([(job, None) for job in jobs])

    async def runs(self, schedule_id: str, limit: int, before_ms: int | None = None) -> list[FiredRun]:
        """Recorded runs, newest fire time first, only those fired strictly before ``before_ms`` if given."""
        top = "+inf" if before_ms is None else f"({before_ms}"
        rows = await self.redis.zrevrangebyscore(
            self.keys.fired(schedule_id), top, "-inf", start=0, num=limit, withscores=True
        )
        out = []
        for row in rows:
            member, score = row[0], row[1]
            queue, _, job_id = str(member).partition("/")
            out.append(FiredRun(int(score), queue, job_id))
        return out

    async def recorded(self, schedule_id: str, queue: str, job_id: str) -> bool:
        """True when the job is in the schedule's run history (a scheduler's fire was recorded)."""
        return await self.redis.zscore(self.keys.fired(schedule_id), f"{queue}/{job_id}") is not None

    async def jobs(self, runs: list[FiredRun]) -> list[Job | None]:
        """The jobs of ``runs`` as stored now (None where the job hash expired)."""
        pipe = self.redis.pipeline(transaction=False)
        for run in runs:
            pipe.hgetall(self.store.keys(run.queue).job(run.job_id))
        rows = await pipe.execute()
        return [
            codec.job_from_hash(run.job_id, run.queue, _strs(data)) if data else None
            for run, data in zip(runs, rows, strict=True)
        ]

    async def job_statuses(self, refs: list[tuple[str, str]]) -> list[str | None]:
        """The status of each ``(queue, job id)``, None where the job hash expired."""
        pipe = self.redis.pipeline(transaction=False)
        for queue, job_id in refs:
            pipe.hget(self.store.keys(queue).job(job_id), "status")
        return [None if status is None else str(status) for status in await pipe.execute()]

    # -- wake-ups -----------------------------------------------------------------------------
    async def wait_notify(self, block_seconds: float) -> tuple[str, int] | None:
        """Block until a change token arrives (``(token, score)``), or None after ``block_seconds``."""
        popped = await self.redis.bzpopmin(self.keys.notify, timeout=min(block_seconds, self._block_cap))
        if not popped:
            return None
        return str(popped[1]), int(float(popped[2]))

    async def renotify(self, token: str, score: int) -> None:
        """Put a popped token back so the next blocked scheduler wakes too (BZPOPMIN wakes only one)."""
        await self.redis.zadd(self.keys.notify, {token: score})
