"""``RedisStore``: the one door to Redis. The hot path lives here; the admin paths hang off it.

    store.enqueue / dequeue / extend / ack_many / fail / reap / release / promote / wait_for_marker
    store.jobs       JobAdmin        (job_admin.py)       get, list, cancel, replay, update
    store.queues     QueueAdmin      (queue_admin.py)     counts, pause, dead-letter queue
    store.schedules  ScheduleStore   (schedule_store.py)  recurring-job records and firing
    store.workers    WorkerRegistry  (workers.py)         heartbeat entries
    store.clock      ServerClock     (clock.py)           the Redis server's time, as seen from here
    store.diagnostics Diagnostics    (diagnostics.py)     server facts and memory footprint, for benchmarks
    store.metrics    MetricsReader   (metrics_reader.py)  the queue gauges Prometheus scrapes

Every public coroutine raises tickr's ``StoreUnavailable``/``StoreError``, never a redis-py error.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis

from tickr.config import Settings, default
from tickr.core.errors import IdempotencyConflict
from tickr.core.job import PRIORITIES, Job, JobError, Priority
from tickr.store import codec
from tickr.store.boundary import store_boundary
from tickr.store.clock import ServerClock
from tickr.store.connection import Script, ScriptLane, is_cluster
from tickr.store.diagnostics import Diagnostics
from tickr.store.event_log import EventLog
from tickr.store.job_admin import JobAdmin
from tickr.store.keys import DEFAULT_PREFIX, QueueKeys, queues_registry
from tickr.store.metrics_reader import MetricsReader
from tickr.store.queue_admin import QueueAdmin
from tickr.store.replies import EnqueueCode, FailCode
from tickr.store.schedule_store import ScheduleStore
from tickr.store.scripts import Scripts, lua_source
from tickr.store.workers import WorkerRegistry

ENQUEUE_CHUNK = 200  # jobs per enqueue script call: a few ms of the server's time, so others are not held up
_PRIORITY_SLOT: dict[Priority, int] = {p: i + 1 for i, p in enumerate(PRIORITIES)}  # the script's ready KEYS


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """Tunables of the store, in milliseconds where they are times. Defaults are the settings' defaults."""

    prefix: str = DEFAULT_PREFIX
    lease_ms: int = int(default("lease_seconds") * 1000)
    weights: tuple[int, int, int, int] = Settings.model_construct().weights()
    idempotency_ttl_ms: int = default("idempotency_ttl_seconds") * 1000
    retention_ms: int = default("done_retention_seconds") * 1000
    done_max: int = default("done_max")
    events_maxlen: int = default("events_maxlen")
    min_replicas: int = default("redis_min_replicas")  # replicas each state change waits for (0: no WAIT)
    min_replicas_timeout_ms: int = default("redis_min_replicas_timeout_ms")
    promote_limit: int = 1_000  # scheduled jobs moved per script call
    reap_limit: int = 1_000  # expired leases handled per script call

    @classmethod
    def from_settings(cls, settings: Settings, prefix: str = DEFAULT_PREFIX) -> StoreConfig:
        """The store tunables that follow from ``settings``."""
        return cls(
            prefix=prefix,
            lease_ms=int(settings.lease_seconds * 1000),
            weights=settings.weights(),
            idempotency_ttl_ms=settings.idempotency_ttl_seconds * 1000,
            retention_ms=settings.done_retention_seconds * 1000,
            done_max=settings.done_max,
            events_maxlen=settings.events_maxlen if settings.history else 0,
            min_replicas=settings.redis_min_replicas,
            min_replicas_timeout_ms=settings.redis_min_replicas_timeout_ms,
        )


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    """What enqueue did: ``created`` is False when an idempotency key matched an existing job."""

    id: str
    created: bool
    status: str
    created_at: int | None = None  # server ms written as the new job's created_at (None: not created)


@dataclass(frozen=True, slots=True)
class LeasedJob:
    """A job handed to a worker with its lease token."""

    job: Job
    token: str


@dataclass(frozen=True, slots=True)
class Dequeued:
    """One dequeue call: the leased jobs, the server time, when the next scheduled job is due."""

    jobs: list[LeasedJob]
    now_ms: int
    next_due_ms: int | None
    more: bool
    unregistered: bool = False  # the worker's task types are not registered for this queue (expired)


@dataclass(frozen=True, slots=True)
class FailOutcome:
    """``retrying`` (with its due time), ``dead``, or ``stale`` (lease no longer held)."""

    kind: str
    due_ms: int | None = None


@dataclass(frozen=True, slots=True)
class ReapResult:
    requeued: int
    dead: int
    lost: int
    next_deadline_ms: int | None


@dataclass(frozen=True, slots=True)
class LapsedResult:
    """What ``release_lapsed`` did: leases of dead workers handled like expired ones, the workers dropped."""

    requeued: int
    dead: int
    lost: int
    workers: int  # lapsed workers removed from the queue's beats
    next_check_ms: int | None  # when the oldest remaining beat lapses; None: no worker beats on the queue


@store_boundary
class RedisStore:
    """The only door to Redis. ``now`` overrides the Redis clock (tests pass a frozen one)."""

    def __init__(self, redis: Redis, config: StoreConfig | None = None, now: Callable[[], int] | None = None) -> None:
        self.redis = redis
        self.config = config or StoreConfig()
        self.scripts = Scripts(redis, self.config.min_replicas, self.config.min_replicas_timeout_ms)
        self._now = now
        self.clock = ServerClock(now)
        self.jobs = JobAdmin(self)
        self.queues = QueueAdmin(self)
        self.schedules = ScheduleStore(self)
        self.workers = WorkerRegistry(self)
        self.diagnostics = Diagnostics(self)
        self.metrics = MetricsReader(self)
        self.events = EventLog(self)
        self._keys: dict[str, QueueKeys] = {}
        self._registered_queues: set[str] = set()
        # Hot-path scripts run on the lane; None where it does not speak the client's connections
        # (cluster, RESP3, credential provider, sentinel, a pool not made by connect()).
        self.lane = ScriptLane.for_client(redis)
        # AsyncScript calls only ``evalsha``/``script_load`` on its client, which the lane provides.
        self._fast = cast(Redis, self.lane) if self.lane is not None else None

    def keys(self, queue: str) -> QueueKeys:
        """The keys of ``queue`` (validated and cached)."""
        k = self._keys.get(queue)
        if k is None:
            k = self._keys[queue] = QueueKeys(queue, self.config.prefix)
        return k

    def clock_arg(self) -> int:
        """The ``now`` argument of every script: the test clock, or 0 (the script reads Redis ``TIME``)."""
        return self._now() if self._now else 0

    async def server_time_ms(self) -> int:
        """The server's time now (one round trip), refreshing ``clock``; the test clock when one is set."""
        if self._now:
            return self._now()
        sent = self.clock.local_ms()
        seconds, micros = await self.redis.time()
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        self.clock.observe(now_ms, sent, self.clock.local_ms())
        return now_ms

    async def ping(self) -> bool:
        """True when Redis answers."""
        return bool(await self.redis.ping())

    async def close(self) -> None:
        """Close every connection (the client's pool and the lane's)."""
        await self.redis.aclose()

    async def _register_queue(self, queue: str) -> None:
        if queue not in self._registered_queues:
            await self.redis.sadd(queues_registry(self.config.prefix), queue)
            self._registered_queues.add(queue)

    def _enqueue_head(self, k: QueueKeys) -> list[str | int]:
        """The enqueue script's ARGV before its jobs."""
        c = self.config
        return [k.job_prefix, k.idem_prefix, self.clock_arg(), c.idempotency_ttl_ms, c.events_maxlen]

    @staticmethod
    def _enqueue_item(job: Job, due_ms: int | None, payload_json: str | None = None) -> list[str | int]:
        """The enqueue script's ARGV for ``job``; ``payload_json``: ``codec.payload_json(job)``, when made already.

        ``codec.payload_json`` is the one step that can refuse a job (``ValidationError``: a field that cannot
        be encoded); once it passed, the rest cannot fail.
        """
        if payload_json is None:
            payload_json = codec.payload_json(job)
        request: str | int = 0  # no idempotency key
        if job.idempotency_key is not None:
            # A schedule's occurrence is named by its key, whatever template a retry carries: never compared.
            request = 1 if job.schedule_id is not None else codec.fingerprint(job)
        fields = codec.job_fields(job, payload_json)
        slot = _PRIORITY_SLOT[job.priority]
        return [job.id, due_ms or 0, slot, request, job.idempotency_key or "", len(fields), *fields]

    @staticmethod
    def _enqueue_result(reply: Sequence[Any], index: int) -> EnqueueResult:
        """Job ``index`` of a chunk's reply ``{now, code, id, status, code, id, status, ...}``."""
        at = 1 + 3 * index
        created = reply[at] == EnqueueCode.CREATED
        return EnqueueResult(
            id=reply[at + 1], created=created, status=reply[at + 2] or "", created_at=int(reply[0]) if created else None
        )

    async def enqueue(self, job: Job, due_ms: int | None = None) -> EnqueueResult:
        """Store ``job``: ready now, or scheduled when ``due_ms`` is in the future.

        ``ValidationError`` (nothing written) for a field that cannot be encoded; ``IdempotencyConflict``
        when its idempotency key names a job made from a different request.
        """
        item = self._enqueue_item(job, due_ms)
        await self._register_queue(job.queue)
        k = self.keys(job.queue)
        reply = await self.scripts.enqueue(k, [*self._enqueue_head(k), *item], self._fast)
        result = self._enqueue_result(reply, 0)
        if reply[1] == EnqueueCode.CONFLICT:
            raise IdempotencyConflict(job.idempotency_key or "", result.id)
        return result

    async def enqueue_many(self, jobs: Sequence[tuple[Job, int | None]]) -> list[EnqueueResult]:
        """Enqueue a batch: one script call per queue and ``ENQUEUE_CHUNK`` jobs, streamed on one connection
        (one round trip for the lot, not a transaction), results in the order given.

        Every job is checked and encoded before the first write: a ``ValidationError`` writes nothing, not even
        the queue's registration. ``IdempotencyConflict`` is raised once the rest of the batch is written.
        """
        items = [self._enqueue_item(job, due_ms) for job, due_ms in jobs]
        by_queue: dict[str, list[int]] = {}
        for index, (job, _) in enumerate(jobs):
            by_queue.setdefault(job.queue, []).append(index)
        for queue in by_queue:
            await self._register_queue(queue)
        calls: list[tuple[QueueKeys, list[int], list[str | int]]] = []
        for queue, indexes in by_queue.items():
            k = self.keys(queue)
            for start in range(0, len(indexes), ENQUEUE_CHUNK):
                chunk = indexes[start : start + ENQUEUE_CHUNK]
                args = self._enqueue_head(k)
                for index in chunk:
                    args += items[index]
                calls.append((k, chunk, args))
        replies = await self._run_enqueues(calls)
        results: list[EnqueueResult | None] = [None] * len(jobs)
        conflicts: list[int] = []
        for (_, chunk, _), reply in zip(calls, replies, strict=True):
            for at, index in enumerate(chunk):
                results[index] = self._enqueue_result(reply, at)
                if reply[1 + 3 * at] == EnqueueCode.CONFLICT:
                    conflicts.append(index)
        done = [r for r in results if r is not None]
        if conflicts:
            conflicts.sort()
            created = [r.id for r in done if r.created]
            key = jobs[conflicts[0]][0].idempotency_key or ""
            raise IdempotencyConflict(key, done[conflicts[0]].id, indexes=conflicts, created=created)
        return done

    async def _run_enqueues(self, calls: Sequence[tuple[QueueKeys, list[int], list[str | int]]]) -> list[Any]:
        """Each call's reply, in order: streamed on the lane, else one pipeline (ending with WAIT when replicas
        must acknowledge); on a cluster, where pipelines refuse scripts, one chain per queue, side by side."""
        if is_cluster(self.redis):
            results: list[Any] = [None] * len(calls)
            chains: dict[str, list[int]] = {}
            for index, (k, _, _) in enumerate(calls):
                chains.setdefault(k.queue, []).append(index)

            async def chain(indexes: list[int]) -> None:
                for index in indexes:  # in order within a queue: its jobs keep their FIFO order
                    k, _, args = calls[index]
                    results[index] = await self.scripts.enqueue(k, args)

            await asyncio.gather(*(chain(indexes) for indexes in chains.values()))
            return results
        if self.lane is None or self.scripts.min_replicas:
            pipe = self.redis.pipeline(transaction=False)
            for k, _, args in calls:
                await self.scripts.enqueue(k, args, pipe)
            waited = self.scripts.add_wait(pipe)
            replies = list(await pipe.execute())
            if waited:
                self.scripts.check_wait(replies.pop())
            return replies
        source, sha = lua_source("enqueue"), self.scripts.sha("enqueue")

        async def scripts() -> AsyncIterator[Script]:
            for k, _, args in calls:
                keys = Scripts.enqueue_keys(k)
                yield (source, sha, len(keys), [*keys, *args])

        replies = await self.lane.stream(scripts())
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    async def dequeue(
        self,
        queue: str,
        count: int,
        worker_id: str,
        lease_ms: int | None = None,
        types: Collection[str] | None = None,
    ) -> Dequeued:
        """Promote due jobs, then lease up to ``count`` ready jobs of ``queue`` of the worker's task types.

        The types are those the worker registered with its heartbeat (``workers.register``); when that
        entry has expired, ``types`` (None: any type) are registered again and the dequeue retried once.
        """
        batch = await self._dequeue(queue, count, worker_id, lease_ms)
        if batch.unregistered:
            ttl = max(3, int(self.config.lease_ms / 1000) + 1)
            await self.workers.register_types(worker_id, [queue], list(types) if types is not None else ["*"], ttl)
            batch = await self._dequeue(queue, count, worker_id, lease_ms)
        return batch

    async def _dequeue(self, queue: str, count: int, worker_id: str, lease_ms: int | None) -> Dequeued:
        sent = self.clock.local_ms()
        args = self._dequeue_args(queue, count, worker_id, lease_ms)
        reply = await self.scripts.dequeue(self.keys(queue), worker_id, args, self._fast)
        return self._dequeued(queue, worker_id, reply, sent)

    def _dequeue_args(self, queue: str, count: int, worker_id: str, lease_ms: int | None) -> list[str | int]:
        c, k = self.config, self.keys(queue)
        return [
            k.job_prefix,
            count,
            self.clock_arg(),
            lease_ms or c.lease_ms,
            worker_id,
            *c.weights,
            c.events_maxlen,
            c.promote_limit,
            k.pending_prefix,
            k.type_marker_prefix,
        ]

    def _dequeued(self, queue: str, worker_id: str, reply: Sequence[Any], sent: float) -> Dequeued:
        """The dequeue script's reply as a ``Dequeued``; ``sent``: local ms when the call went out (clock sync)."""
        self.clock.observe(int(reply[0]), sent, self.clock.local_ms())
        jobs = []
        now = str(reply[0])
        for i in range(3, len(reply), 4):
            fields = codec.pairs_to_dict(reply[i + 1])
            token = str(reply[i + 2])
            # The hash as it was read, with what the lease wrote laid over it (the script sends no copy).
            fields.update(status="active", attempt=str(reply[i + 3]), started_at=now, worker=worker_id, token=token)
            jobs.append(LeasedJob(job=codec.job_from_hash(reply[i], queue, fields), token=token))
        next_due = int(reply[1])
        return Dequeued(
            jobs=jobs,
            now_ms=int(reply[0]),
            next_due_ms=None if next_due < 0 else next_due,
            more=reply[2] == 1,
            unregistered=reply[2] == -1,
        )

    async def extend(self, queue: str, leases: Sequence[tuple[str, str]], lease_ms: int | None = None) -> list[str]:
        """Extend the leases ``(id, token)``; returns the ids whose lease is no longer held."""
        if not leases:
            return []
        args: list[str | int] = [self.keys(queue).job_prefix, self.clock_arg(), lease_ms or self.config.lease_ms]
        for job_id, token in leases:
            args += [job_id, token]
        return list(await self.scripts.extend(self.keys(queue), args))

    async def ack_many(self, queue: str, items: Sequence[tuple[str, str, str]]) -> list[bool]:
        """Mark ``(id, token, result_json)`` jobs succeeded; False where the lease was stale."""
        if not items:
            return []
        return [r == 1 for r in await self.scripts.ack(self.keys(queue), self._ack_args(queue, items), self._fast)]

    def _ack_args(self, queue: str, items: Sequence[tuple[str, str, str]]) -> list[str | int]:
        c = self.config
        args: list[str | int] = [self.keys(queue).job_prefix, self.clock_arg(), c.retention_ms, c.done_max]
        args.append(c.events_maxlen)
        for item in items:
            args += item
        return args

    async def ack_and_dequeue(
        self, queue: str, items: Sequence[tuple[str, str, str]], count: int, worker_id: str
    ) -> tuple[list[bool], Dequeued | None]:
        """``ack_many`` of ``items``, then a dequeue of up to ``count`` jobs of ``queue``, in one round trip: the
        two scripts go out in one write on one connection and stay two transitions.

        The dequeue's result is None where it could not run that way (no lane, replicas to wait for) or
        failed; the caller's own dequeue takes over. When the ack fails and the dequeue leased jobs, those
        leases are handed back before the ack's error is raised, so nothing is stranded.
        """
        if self.lane is None or self.config.min_replicas or not items or count <= 0:
            return await self.ack_many(queue, items), None
        k = self.keys(queue)
        ack_keys, dequeue_keys = Scripts.ack_keys(k), Scripts.dequeue_keys(k, worker_id)
        ack_args, dequeue_args = self._ack_args(queue, items), self._dequeue_args(queue, count, worker_id, None)

        async def both() -> AsyncIterator[Script]:
            for name, keys, args in (("ack", ack_keys, ack_args), ("dequeue", dequeue_keys, dequeue_args)):
                yield (lua_source(name), self.scripts.sha(name), len(keys), [*keys, *args])

        sent = self.clock.local_ms()
        acked, leased = await self.lane.stream(both())
        batch = None if isinstance(leased, Exception) else self._dequeued(queue, worker_id, leased, sent)
        if isinstance(acked, Exception):
            if batch is not None and batch.jobs:
                await self.release(queue, [(j.job.id, j.token) for j in batch.jobs])
            raise acked
        return [r == 1 for r in acked], batch

    async def fail(
        self, queue: str, job_id: str, token: str, error: JobError, *, delay_ms: int, permanent: bool = False
    ) -> FailOutcome:
        """Record a failed attempt: retry after ``delay_ms``, or dead-letter it."""
        args = [
            self.keys(queue).job_prefix,
            self.clock_arg(),
            job_id,
            token,
            codec.dumps(error.to_dict()),
            max(0, delay_ms),
            1 if permanent else 0,
            self.config.events_maxlen,
        ]
        kind, due = await self.scripts.fail(self.keys(queue), args, self._fast)
        code = FailCode(int(kind))
        if code is FailCode.RETRYING:
            return FailOutcome("retrying", int(due))
        return FailOutcome("dead" if code is FailCode.DEAD else "stale")

    async def reap(self, queue: str) -> ReapResult:
        """Handle expired leases of ``queue``."""
        args = [self.keys(queue).job_prefix, self.clock_arg(), self.config.reap_limit, self.config.events_maxlen]
        requeued, dead, lost, next_deadline = await self.scripts.reap(self.keys(queue), args)
        return ReapResult(requeued, dead, lost, None if int(next_deadline) < 0 else int(next_deadline))

    async def release_lapsed(self, queue: str, lapse_ms: int) -> LapsedResult:
        """Release the leases of workers on ``queue`` whose heartbeat is older than ``lapse_ms`` (fenced)."""
        c = self.config
        args = [self.keys(queue).job_prefix, self.clock_arg(), lapse_ms, c.reap_limit, c.events_maxlen]
        requeued, dead, lost, workers, next_check = await self.scripts.release_lapsed(self.keys(queue), args)
        check = None if int(next_check) < 0 else int(next_check)
        return LapsedResult(int(requeued), int(dead), int(lost), int(workers), check)

    async def expire_unrunnable(self, queue: str, grace_ms: int, limit: int = 1_000) -> tuple[int, int | None]:
        """Dead-letter parked jobs whose type no live worker has registered for ``grace_ms``:
        ``(dead-lettered, when the next parked type may expire)``."""
        k = self.keys(queue)
        args = [k.pending_prefix, k.job_prefix, self.clock_arg(), grace_ms, limit, self.config.events_maxlen, queue]
        dead, next_check = await self.scripts.unrunnable(k, args)
        return int(dead), None if int(next_check) < 0 else int(next_check)

    async def release(self, queue: str, leases: Sequence[tuple[str, str]]) -> tuple[int, int, int]:
        """Hand unfinished leases back at once: ``(requeued, lost, stale)``."""
        if not leases:
            return (0, 0, 0)
        args: list[str | int] = [self.keys(queue).job_prefix, self.clock_arg(), self.config.events_maxlen]
        for job_id, token in leases:
            args += [job_id, token]
        requeued, lost, stale = await self.scripts.release(self.keys(queue), args)
        return int(requeued), int(lost), int(stale)

    async def promote(self, queue: str) -> tuple[int, int | None]:
        """Move due scheduled jobs to ready: ``(moved, next due ms)``."""
        moved, next_due = await self.scripts.promote(
            self.keys(queue), [self.keys(queue).job_prefix, self.clock_arg(), self.config.promote_limit]
        )
        return int(moved), None if int(next_due) < 0 else int(next_due)

    async def wait_for_marker(self, queue: str, block_seconds: float, types: Sequence[str] = ()) -> int | None:
        """Block until a wake-up marker arrives for ``queue`` (or for one of ``types`` parked on it),
        or ``block_seconds`` pass. Returns the marker's score (the time there is work), or None on timeout.
        """
        k = self.keys(queue)
        keys = [k.marker, *(k.type_marker(t) for t in types)]
        if self.lane is not None:
            popped = await self.lane.call("BZPOPMIN", *keys, block_seconds)
        else:
            popped = await self.redis.bzpopmin(keys, timeout=block_seconds)
        if not popped:
            return None
        return int(float(popped[2]))
