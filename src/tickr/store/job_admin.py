"""The admin path to Redis for jobs: find, read and list jobs (cursor paging), cancel, replay, update.

Queue-level reads and writes (counts, pause, dead-letter queue) live in ``store/queue_admin.py``.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import orjson

from tickr.core.errors import InvalidState, JobNotFound, ValidationError
from tickr.core.job import PRIORITIES, Job, JobState, Priority
from tickr.store import codec
from tickr.store.boundary import store_boundary
from tickr.store.keys import QueueKeys
from tickr.store.replies import JobChangeCode

if TYPE_CHECKING:
    from tickr.store.store import RedisStore

# Where jobs wait, in listing order within a queue. A job hash says its state; these say where to look.
KINDS = ("active", *(f"ready:{p.value}" for p in PRIORITIES), "scheduled", "dead", "done")
STATUS_KINDS: dict[JobState | None, tuple[str, ...]] = {
    None: KINDS,
    JobState.QUEUED: tuple(k for k in KINDS if k.startswith("ready:")),
    JobState.SCHEDULED: ("scheduled",),
    JobState.RETRYING: ("scheduled",),
    JobState.ACTIVE: ("active",),
    JobState.DEAD: ("dead",),
    JobState.SUCCEEDED: ("done",),
    JobState.CANCELLED: ("done",),
    JobState.LOST: ("done",),
}
MAX_PAGE = 500
SHARED_STATES = frozenset(
    {JobState.SCHEDULED, JobState.RETRYING, JobState.SUCCEEDED, JobState.CANCELLED, JobState.LOST}
)
MIN_FETCH = 50  # ids read at a time when filters may drop some
SCAN_BUDGET_PAGES = 5  # a page examines at most this many pages' worth of ids when filters drop some
Position = int | tuple[float, int]  # ready list: ids taken from the tail; zset: (last score, ids seen at it)


@dataclass(frozen=True, slots=True)
class JobPage:
    """One page of a listing; ``next_cursor`` is None at the end."""

    jobs: list[Job]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class _Source:
    """One Redis structure of one queue that holds job ids."""

    queue: str
    kind: str
    keys: QueueKeys

    @property
    def order(self) -> tuple[str, int]:
        return (self.queue, KINDS.index(self.kind))

    @property
    def key(self) -> str:
        if self.kind.startswith("ready:"):
            return self.keys.ready(self.kind.removeprefix("ready:"))
        return str(getattr(self.keys, self.kind))

    @property
    def is_list(self) -> bool:
        return self.kind.startswith("ready:")


def _bad_cursor() -> ValidationError:
    return ValidationError("invalid cursor", {"cursor": "not a cursor returned by this listing"})


def encode_cursor(source: _Source, pos: Position) -> str:
    """An opaque cursor: which structure of which queue, and where in it."""
    if isinstance(pos, tuple):
        value: Any = [None if math.isinf(pos[0]) else pos[0], pos[1]]
    else:
        value = pos
    raw = orjson.dumps({"q": source.queue, "k": source.kind, "p": value})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[tuple[str, int], Position]:
    """The source order key and position in a cursor; ``ValidationError`` on anything else."""
    try:
        data = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        queue, kind, pos = data["q"], data["k"], data["p"]
        order = (str(queue), KINDS.index(kind))
    except (binascii.Error, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        raise _bad_cursor() from None
    if kind.startswith("ready:") and isinstance(pos, int) and not isinstance(pos, bool) and pos >= 0:
        return order, pos
    if (
        not kind.startswith("ready:")
        and isinstance(pos, list)
        and len(pos) == 2
        and (pos[0] is None or isinstance(pos[0], int | float))
        and isinstance(pos[1], int)
        and pos[1] >= 0
    ):
        return order, (math.inf if pos[0] is None else float(pos[0]), pos[1])
    raise _bad_cursor()


@store_boundary
class JobAdmin:
    """Read and administer jobs and queues. Shares the store's client, keys and scripts."""

    def __init__(self, store: RedisStore) -> None:
        self.store = store
        self.redis = store.redis

    async def queues(self) -> list[str]:
        """Every queue name ever enqueued to, sorted."""
        return await self.store.queues.names()

    async def locate(self, job_id: str, queue: str | None = None) -> str:
        """The queue holding job ``job_id``; ``JobNotFound`` if none does."""
        candidates = [queue] if queue else await self.queues()
        if not candidates:
            raise JobNotFound(job_id)
        pipe = self.redis.pipeline(transaction=False)
        for name in candidates:
            pipe.exists(self.store.keys(name).job(job_id))
        for name, found in zip(candidates, await pipe.execute(), strict=True):
            if found:
                return name
        raise JobNotFound(job_id)

    async def get_jobs(self, refs: Sequence[tuple[str, str]]) -> list[Job | None]:
        """The jobs ``(queue, id)`` in one round trip; None where a job does not exist."""
        if not refs:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for queue, job_id in refs:
            pipe.hgetall(self.store.keys(queue).job(job_id))
        out: list[Job | None] = []
        for (queue, job_id), data in zip(refs, await pipe.execute(), strict=True):
            try:
                out.append(codec.job_from_hash(job_id, queue, data) if data else None)
            except (KeyError, TypeError, ValueError):  # a hash that expired half-way, or is not a job
                out.append(None)
        return out

    async def fields(self, queue: str, ids: Sequence[str], names: Sequence[str]) -> list[dict[str, str]]:
        """Raw ``names`` fields of each job hash in ``ids`` ("" where missing), in pipelined chunks of 5,000."""
        k = self.store.keys(queue)
        rows: list[dict[str, str]] = []
        for start in range(0, len(ids), 5_000):
            pipe = self.redis.pipeline(transaction=False)
            for job_id in ids[start : start + 5_000]:
                pipe.hmget(k.job(job_id), list(names))
            for values in await pipe.execute():
                rows.append({name: value or "" for name, value in zip(names, values, strict=True)})
        return rows

    async def get_job(self, job_id: str, queue: str | None = None) -> Job:
        """The job ``job_id`` as stored now."""
        queue = await self.locate(job_id, queue)
        data = await self.redis.hgetall(self.store.keys(queue).job(job_id))
        if not data:
            raise JobNotFound(job_id)
        return codec.job_from_hash(job_id, queue, codec.pairs_to_dict([x for kv in data.items() for x in kv]))

    def _check(self, job_id: str, reply: list[Any], operation: str) -> str:
        code, status = JobChangeCode(int(reply[0])), str(reply[1])
        if code is JobChangeCode.NO_SUCH_JOB:
            raise JobNotFound(job_id)
        if code is JobChangeCode.WRONG_STATE:
            raise InvalidState(job_id, status, operation)
        return status

    async def cancel(self, job_id: str, queue: str | None = None) -> str:
        """Cancel a job that has not started; returns its new status."""
        queue = await self.locate(job_id, queue)
        s = self.store
        args = [job_id, s.clock_arg(), s.config.retention_ms, s.config.events_maxlen]
        return self._check(job_id, await s.scripts.cancel(s.keys(queue), job_id, args), "cancel")

    async def replay(self, job_id: str, queue: str | None = None) -> str:
        """Bring a dead, lost or cancelled job back to ready with fresh attempts."""
        queue = await self.locate(job_id, queue)
        s = self.store
        args = [job_id, s.clock_arg(), s.config.events_maxlen]
        return self._check(job_id, await s.scripts.replay(s.keys(queue), job_id, args), "replay")

    async def update(
        self,
        job_id: str,
        *,
        queue: str | None = None,
        priority: str | None = None,
        due_ms: int | None = None,
        payload: dict[str, Any] | None = None,
    ) -> str:
        """Change priority, due time (``due_ms``; 0 or past = now) or payload of a job not yet started."""
        queue = await self.locate(job_id, queue)
        s = self.store
        due_arg = 0 if due_ms is None else (due_ms if due_ms > 0 else -1)
        args = [
            job_id,
            s.clock_arg(),
            priority or "",
            due_arg,
            codec.dumps(payload) if payload is not None else "",
            s.config.events_maxlen,
        ]
        return self._check(job_id, await s.scripts.update(s.keys(queue), job_id, args), "update")

    # -- listing ----------------------------------------------------------------------------------
    async def list_jobs(
        self,
        *,
        queue: str | None = None,
        status: JobState | str | None = None,
        job_type: str | None = None,
        priority: Priority | str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> JobPage:
        """A page of jobs, filtered by queue, status, type and priority, newest first within each structure.

        A priority filter skips the ready lists of the other priorities and checks each job's hash elsewhere.

        Queues are walked in name order; within a queue: active, ready lists (critical first),
        scheduled, dead, done. Each call reads O(limit) ids (at most ``SCAN_BUDGET_PAGES`` pages'
        worth when filters drop jobs, so a page may come back short with a cursor to go on).
        """
        state = JobState(status) if status is not None else None
        rank = Priority(priority).value if priority is not None else None
        limit = max(1, min(limit, MAX_PAGE))
        names = [queue] if queue else await self.queues()
        kinds = [k for k in STATUS_KINDS[state] if rank is None or not k.startswith("ready:") or k == f"ready:{rank}"]
        sources = [_Source(q, kind, self.store.keys(q)) for q in sorted(names) for kind in kinds]
        start, pos = 0, None
        if cursor:
            order, resume_pos = decode_cursor(cursor)
            start = next((i for i, src in enumerate(sources) if src.order >= order), len(sources))
            if start < len(sources) and sources[start].order == order:
                pos = resume_pos
        sources = await self._non_empty(sources[start:], keep_first=pos is not None)
        # When the structure alone decides the state, every id read is a hit: no need to read ahead.
        exact = job_type is None and state not in SHARED_STATES and (rank is None or state is JobState.QUEUED)
        jobs: list[Job] = []
        budget = limit * SCAN_BUDGET_PAGES
        for index, src in enumerate(sources):
            pos = pos if index == 0 else None
            exhausted = False
            while not exhausted:
                if len(jobs) == limit or budget <= 0:
                    return JobPage(jobs, encode_cursor(src, self._start(src) if pos is None else pos))
                room = limit - len(jobs)
                rows, exhausted = await self._fetch(src, pos, min(room if exact else max(room, MIN_FETCH), budget))
                budget -= len(rows)
                found = await self._matching(src.queue, [job_id for job_id, _ in rows], state, job_type, rank, exact)
                for i, ((_, row_pos), job) in enumerate(zip(rows, found, strict=True)):
                    pos = row_pos
                    if job is not None:
                        jobs.append(job)
                    if len(jobs) == limit:
                        exhausted = exhausted and i == len(rows) - 1
                        break
        return JobPage(jobs, None)

    async def _matching(
        self, queue: str, ids: list[str], state: JobState | None, job_type: str | None, rank: str | None, exact: bool
    ) -> list[Job | None]:
        """The jobs ``ids`` that pass the filters (None in place of the others), reading full hashes
        only for those whose status, type and priority match."""
        wanted = ids
        if not exact and ids:
            pipe = self.redis.pipeline(transaction=False)
            for job_id in ids:
                pipe.hmget(self.store.keys(queue).job(job_id), "status", "type", "priority")
            heads = await pipe.execute()
            wanted = [
                job_id
                for job_id, (status, kind, prio) in zip(ids, heads, strict=True)
                if status is not None
                and state in (None, status)
                and job_type in (None, kind)
                and rank in (None, prio or "default")
            ]
        loaded = dict(zip(wanted, await self.get_jobs([(queue, job_id) for job_id in wanted]), strict=True))
        return [
            job
            if (job := loaded.get(job_id)) is not None
            and state in (None, job.status)
            and job_type in (None, job.type)
            and rank in (None, job.priority.value)
            else None
            for job_id in ids
        ]

    async def _non_empty(self, sources: list[_Source], keep_first: bool) -> list[_Source]:
        """``sources`` without the empty ones (one round trip); the first is kept when resuming in it."""
        if not sources:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for src in sources:
            if src.is_list:
                pipe.llen(src.key)
            else:
                pipe.zcard(src.key)
        sizes = await pipe.execute()
        return [
            src for i, (src, size) in enumerate(zip(sources, sizes, strict=True)) if size or (i == 0 and keep_first)
        ]

    @staticmethod
    def _start(src: _Source) -> Position:
        return 0 if src.is_list else (math.inf, 0)

    async def _fetch(self, src: _Source, pos: Position | None, count: int) -> tuple[list[tuple[str, Position]], bool]:
        """Up to ``count`` ids after ``pos``, newest first, each with the position just after it."""
        if pos is None:
            pos = self._start(src)
        if src.is_list:
            taken = int(pos) if isinstance(pos, int) else 0
            ids = await self.redis.lrange(src.key, -(taken + count), -(taken + 1))
            ids.reverse()
            return [(str(job_id), taken + i + 1) for i, job_id in enumerate(ids)], len(ids) < count
        score, seen = pos if isinstance(pos, tuple) else (math.inf, 0)
        top = "+inf" if math.isinf(score) else repr(score)
        rows = cast(
            "list[tuple[str, float]]",
            await self.redis.zrevrangebyscore(src.key, top, "-inf", start=seen, num=count, withscores=True),
        )
        out: list[tuple[str, Position]] = []
        for member, member_score in rows:
            if member_score == score:
                seen += 1
            else:
                score, seen = float(member_score), 1
            out.append((str(member), (score, seen)))
        return out, len(rows) < count
