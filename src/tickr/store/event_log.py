"""The event streams as the history sink reads them: consumer groups, reads, claims, acks, records, lag."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from redis.exceptions import ResponseError

from tickr.core.events import StreamEvent, expand
from tickr.core.job import Job
from tickr.store.boundary import store_boundary
from tickr.store.codec import job_from_hash, pairs_to_dict
from tickr.store.connection import is_cluster
from tickr.store.keys import ScheduleKeys, queues_registry

if TYPE_CHECKING:
    from tickr.store.store import RedisStore

HISTORY_GROUP = "tickr-history"
SCHEDULES = ""  # the "queue" of the schedules stream's events
CLUSTER_POLL_MS = 250  # on a cluster (no multi-stream blocking read): the wait between reads that found nothing


@dataclass(frozen=True, slots=True)
class Stream:
    """One event stream: the queue it belongs to (``SCHEDULES`` for the schedules' stream) and its keys."""

    queue: str
    key: str
    stats: str


@dataclass(frozen=True, slots=True)
class StreamStatus:
    """How far the history is behind on one stream."""

    stream: Stream
    length: int
    oldest_uncommitted_ms: int | None  # the oldest event not yet in SQL (None: all committed)
    pending: int  # read by a sink, not yet committed
    dropped: int  # unread events dropped at the cap, ever
    has_group: bool


@dataclass(frozen=True, slots=True)
class HistoryLag:
    """How far SQL history is behind Redis, over every stream."""

    seconds: float  # age of the oldest event not yet committed to SQL (0: all committed)
    backlog: int  # events in the streams (committed ones are trimmed soon after)
    pending: int  # read by a sink, not yet committed
    dropped: int  # unread events dropped at the cap, ever
    sinks: bool  # a sink has read these streams (its consumer group exists)

    def to_dict(self) -> dict[str, float | int | bool]:
        return {
            "lag_seconds": self.seconds,
            "backlog": self.backlog,
            "pending": self.pending,
            "dropped": self.dropped,
            "sink_seen": self.sinks,
        }


@store_boundary
class EventLog:
    """Every queue's ``events`` stream and the schedules' one, read through one consumer group."""

    def __init__(self, store: RedisStore, group: str = HISTORY_GROUP) -> None:
        self._store = store
        self.group = group

    @property
    def _redis(self) -> Any:
        return self._store.redis

    def stream(self, queue: str) -> Stream:
        if queue == SCHEDULES:
            sk = ScheduleKeys(self._store.config.prefix)
            return Stream(SCHEDULES, sk.events, sk.stats)
        k = self._store.keys(queue)
        return Stream(queue, k.events, k.stats)

    async def streams(self) -> list[Stream]:
        """The schedules' stream and one per known queue (a queue made since the last call included)."""
        names = await self._redis.smembers(queues_registry(self._store.config.prefix))
        return [self.stream(SCHEDULES), *(self.stream(q) for q in sorted(names))]

    async def ensure_groups(self, streams: Sequence[Stream]) -> None:
        """Create the consumer group on each stream (reading from its first entry) where it is missing."""
        for s in streams:
            try:
                await self._redis.xgroup_create(s.key, self.group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def read(
        self, consumer: str, streams: Sequence[Stream], *, count: int, block_ms: int | None
    ) -> list[StreamEvent]:
        """New entries for ``consumer`` (at most ``count`` per stream), blocking up to ``block_ms`` for one."""
        if not streams:
            return []
        by_key = {s.key: s for s in streams}
        if is_cluster(self._redis):
            return await self._read_per_stream(consumer, streams, count=count, block_ms=block_ms)
        reply = await self._redis.xreadgroup(
            self.group, consumer, {s.key: ">" for s in streams}, count=count, block=block_ms
        )
        return [event for key, entries in _stream_replies(reply) for event in _events(by_key[key], entries)]

    async def _read_per_stream(
        self, consumer: str, streams: Sequence[Stream], *, count: int, block_ms: int | None
    ) -> list[StreamEvent]:
        """On a cluster every stream is in its own slot, so one XREADGROUP cannot name several: one read per
        stream, in a pipeline that redis-py splits per node (one round trip per node, side by side). With
        nothing new, it waits ``block_ms`` (at most ``CLUSTER_POLL_MS``) and reads once more."""
        for attempt in (1, 2):
            pipe = self._redis.pipeline(transaction=False)
            for s in streams:
                pipe.xreadgroup(self.group, consumer, {s.key: ">"}, count=count)
            replies = await pipe.execute(raise_on_error=False)
            out: list[StreamEvent] = []
            for s, reply in zip(streams, replies, strict=True):
                if isinstance(reply, ResponseError) and "NOGROUP" in str(reply):
                    continue  # a queue made since the groups were ensured: the sink's next refresh creates it
                if isinstance(reply, Exception):
                    raise reply
                out += [event for _, entries in _stream_replies(reply) for event in _events(s, entries)]
            if out or not block_ms or attempt == 2:
                return out
            await asyncio.sleep(min(block_ms, CLUSTER_POLL_MS) / 1000)
        return []

    async def claim(self, consumer: str, stream: Stream, *, min_idle_ms: int, count: int) -> list[StreamEvent]:
        """Take over entries another consumer read and left unacknowledged for ``min_idle_ms`` (a dead sink)."""
        claimed: list[StreamEvent] = []
        start = "0-0"
        while len(claimed) < count:
            reply = await self._redis.xautoclaim(
                stream.key, self.group, consumer, min_idle_ms, start_id=start, count=count - len(claimed)
            )
            start, entries = reply[0], reply[1]
            claimed += _events(stream, entries)
            if start in ("0-0", b"0-0"):
                break
        return claimed

    async def ack(self, stream: Stream, entry_ids: Sequence[str]) -> int:
        """Acknowledge committed entries and trim what every group has acknowledged; returns how many acked."""
        if not entry_ids:
            return 0
        acked, _ = await self._store.scripts.events_ack(stream.key, [self.group, *entry_ids])
        return int(acked)

    async def forget_idle_consumers(self, stream: Stream, *, idle_ms: int) -> int:
        """Remove consumers with nothing pending that have been idle ``idle_ms`` (sinks long gone)."""
        removed = 0
        for info in await self._redis.xinfo_consumers(stream.key, self.group):
            if int(info["pending"]) == 0 and int(info["idle"]) >= idle_ms:
                await self._redis.xgroup_delconsumer(stream.key, self.group, info["name"])
                removed += 1
        return removed

    async def records(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Job | None]:
        """The current Redis record of each ``(queue, job id)``, None where the hash is gone. One round trip."""
        unique = list(dict.fromkeys(k for k in keys if k[0] != SCHEDULES))
        if not unique:
            return {}
        pipe = self._redis.pipeline(transaction=False)
        for queue, job_id in unique:
            pipe.hgetall(self._store.keys(queue).job(job_id))
        found = await pipe.execute()
        return {
            (queue, job_id): job_from_hash(job_id, queue, data) if data else None
            for (queue, job_id), data in zip(unique, found, strict=True)
        }

    async def status(self, streams: Sequence[Stream] | None = None) -> list[StreamStatus]:
        """Length, oldest uncommitted event, pending and dropped counts of each stream; one round trip."""
        if streams is None:
            streams = await self.streams()
        if is_cluster(self._redis):  # redis-py refuses scripts in cluster pipelines: side by side instead
            replies = await asyncio.gather(
                *(self._store.scripts.events_status(s.key, s.stats, [self.group]) for s in streams)
            )
        else:
            pipe = self._redis.pipeline(transaction=False)
            for s in streams:
                await self._store.scripts.events_status(s.key, s.stats, [self.group], pipe)
            replies = await pipe.execute()
        out = []
        for s, (length, oldest, pending, dropped, has_group) in zip(streams, replies, strict=True):
            oldest_ms = int(str(oldest).partition("-")[0]) if oldest else None
            out.append(StreamStatus(s, int(length), oldest_ms, int(pending), int(dropped), bool(has_group)))
        return out

    async def lag(self) -> HistoryLag:
        """The history's lag over every stream: two round trips (the streams' status, the server clock)."""
        statuses = await self.status()
        now_ms = await self._store.server_time_ms()
        oldest = [s.oldest_uncommitted_ms for s in statuses if s.oldest_uncommitted_ms is not None]
        return HistoryLag(
            seconds=round(max(0, now_ms - min(oldest)) / 1000, 3) if oldest else 0.0,
            backlog=sum(s.length for s in statuses),
            pending=sum(s.pending for s in statuses),
            dropped=sum(s.dropped for s in statuses),
            sinks=any(s.has_group for s in statuses),
        )


def _stream_replies(reply: Any) -> list[tuple[str, list[Any]]]:
    """XREADGROUP's reply as ``[(key, entries)]`` (RESP2 gives a list of pairs, RESP3 a map)."""
    if not reply:
        return []
    if isinstance(reply, dict):
        return [(str(k), v[0] if v and isinstance(v[0], list) and len(v) == 1 else v) for k, v in reply.items()]
    return [(str(key), entries) for key, entries in reply]


def _events(stream: Stream, entries: list[Any]) -> list[StreamEvent]:
    out = []
    for entry in entries:
        entry_id, fields = entry[0], entry[1]
        if fields is None:  # deleted while pending (XAUTOCLAIM lists those separately in Redis 7)
            continue
        data = fields if isinstance(fields, dict) else pairs_to_dict(fields)
        out += [StreamEvent(stream.queue, str(entry_id), one) for one in expand(data)]
    return out
