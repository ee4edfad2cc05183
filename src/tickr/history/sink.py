"""The history sink: reads every queue's event stream through one consumer group and writes it to SQL.

A pass reads a batch (new entries, or entries a dead sink left pending for ``claim_idle``), fetches the jobs'
Redis records in one round trip, projects both into rows and writes them in one transaction; only after the
commit are the entries acknowledged (and the streams trimmed of what every group has acknowledged). When the
write fails the batch is kept and retried with a growing backoff: the streams hold the backlog meanwhile, so a
database outage delays history and loses nothing. Any number of sinks may run: the group shares the entries
out, and upserts keyed by job id and attempt make a replayed or reordered batch harmless.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.exc import DBAPIError

from tickr.core.events import StreamEvent
from tickr.history.database import HistoryDB
from tickr.history.projection import project
from tickr.history.retention import delete_older_than
from tickr.history.writer import write
from tickr.lifecycle import LoopService, describe
from tickr.store.event_log import Stream
from tickr.store.store import RedisStore

DAY_MS = 86_400_000


class HistoryWriteFailed(Exception):
    """The database refused or could not take a batch; the batch is kept and written again."""


@dataclass(frozen=True, slots=True)
class SinkConfig:
    """How the sink reads, claims and prunes. Times in seconds."""

    batch_size: int = 500  # entries per stream per read
    block_seconds: float = 1.0  # longest a read waits for new entries
    refresh_seconds: float = 5.0  # how often to look for new queues
    claim_idle_seconds: float = 30.0  # entries pending this long on another consumer are taken over
    claim_every_seconds: float = 10.0
    retention_days: float = 30.0
    retention_every_seconds: float = 300.0
    forget_consumers_after_seconds: float = 3600.0


def consumer_name() -> str:
    """``<host>:<pid>:<random>``: unique per sink, readable in ``XINFO CONSUMERS``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class HistorySink(LoopService):
    """One sink replica (a service of the lifecycle in ``tickr.lifecycle``)."""

    name = "history-sink"
    graceful_stop = True  # a batch being written is committed and acknowledged before the sink stops
    max_backoff = 5.0

    def __init__(self, store: RedisStore, db: HistoryDB, config: SinkConfig | None = None) -> None:
        super().__init__()
        self.store = store
        self.db = db
        self.config = config or SinkConfig()
        self.consumer = consumer_name()
        self.events = store.events
        self._streams: list[Stream] = []
        self._refreshed = self._claimed = self._retained = float("-inf")
        self._held: list[StreamEvent] = []  # read, not yet committed (kept across a failed write)
        self.written = 0  # events committed by this sink
        self.deleted = 0  # rows deleted by retention

    async def setup(self) -> None:
        await self._refresh(force=True)

    async def run_pass(self) -> float:
        await self._refresh()
        if not self._held:
            self._held = await self._claim() or await self._read()
        if self._held:
            await self._commit(self._held)
            self._held = []
        await self._retain()
        return 0.0

    async def _refresh(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._refreshed >= self.config.refresh_seconds:
            streams = await self.events.streams()
            await self.events.ensure_groups([s for s in streams if s not in self._streams])
            self._streams = streams
            self._refreshed = now

    async def _read(self) -> list[StreamEvent]:
        block = None if self.stopping else int(self.config.block_seconds * 1000)
        return await self.events.read(self.consumer, self._streams, count=self.config.batch_size, block_ms=block)

    async def _claim(self) -> list[StreamEvent]:
        now = time.monotonic()
        if now - self._claimed < self.config.claim_every_seconds:
            return []
        claimed: list[StreamEvent] = []
        idle_ms = int(self.config.claim_idle_seconds * 1000)
        for stream in self._streams:
            claimed += await self.events.claim(self.consumer, stream, min_idle_ms=idle_ms, count=self.config.batch_size)
            forget_ms = int(self.config.forget_consumers_after_seconds * 1000)
            await self.events.forget_idle_consumers(stream, idle_ms=forget_ms)
        self._claimed = now
        if claimed:
            self.log.info("%s took over %d events left pending by another sink", self.name, len(claimed))
        return claimed

    async def _commit(self, batch: Sequence[StreamEvent]) -> None:
        records = await self.events.records([(e.queue, e.subject) for e in batch])
        try:
            await write(self.db, project(list(batch), records))
        except (DBAPIError, OSError) as exc:  # kept short: the statement and its rows must not reach the log
            reason = describe(exc.orig) if isinstance(exc, DBAPIError) and exc.orig is not None else describe(exc)
            raise HistoryWriteFailed(f"writing {len(batch)} events to {self.db.describe()}: {reason}") from None
        by_stream: dict[str, dict[str, None]] = defaultdict(dict)  # a batch entry is one entry of many events
        for event in batch:
            by_stream[event.queue][event.entry_id] = None
        for queue, ids in by_stream.items():
            await self.events.ack(self.events.stream(queue), list(ids))
        self.written += len(batch)

    async def _retain(self) -> None:
        now = time.monotonic()
        if now - self._retained < self.config.retention_every_seconds:
            return
        self._retained = now
        cutoff = int(time.time() * 1000) - int(self.config.retention_days * DAY_MS)
        deleted = await delete_older_than(self.db, cutoff)
        self.deleted += deleted
        if deleted:
            self.log.info(
                "%s deleted %d history rows older than %g days", self.name, deleted, self.config.retention_days
            )
