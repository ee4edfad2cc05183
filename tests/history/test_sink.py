"""The history sink against real Redis and both databases: runs land in SQL, a killed sink's batch is taken
over, a database outage in the middle of 5,000 jobs loses nothing, new queues are found without a restart."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select, text

from tests.history.proxy import CuttableProxy
from tests.waiting import wait_until
from tickr.core.factory import new_job
from tickr.core.job import JobError
from tickr.history.database import HistoryDB
from tickr.history.schema import job_runs, jobs
from tickr.history.sink import HistorySink, SinkConfig
from tickr.store.connection import connect
from tickr.store.store import RedisStore, StoreConfig

FAST = SinkConfig(
    batch_size=200, block_seconds=0.1, refresh_seconds=0.1, claim_idle_seconds=0.5, claim_every_seconds=0.1
)


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[RedisStore]:
    """A store under a prefix of this test's own: its sink sees only this test's queues."""
    client = connect(redis_url)
    prefix = f"tickr-t{uuid.uuid4().hex[:8]}"
    yield RedisStore(client, StoreConfig(prefix=prefix))
    doomed = [key async for key in client.scan_iter(match=f"{prefix}:*", count=5_000)]
    for start in range(0, len(doomed), 1_000):
        await client.unlink(*doomed[start : start + 1_000])
    await client.aclose()


@pytest.fixture
async def sinks() -> AsyncIterator[list[HistorySink]]:
    """Sinks a test starts; all stopped at the end."""
    started: list[HistorySink] = []
    yield started
    for sink in started:
        await sink.stop()


async def start_sink(
    store: RedisStore, db: HistoryDB, sinks: list[HistorySink], config: SinkConfig = FAST
) -> HistorySink:
    sink = HistorySink(store, db, config)
    await sink.start()
    await asyncio.wait_for(sink.started.wait(), 10)
    sinks.append(sink)
    return sink


async def run_jobs(store: RedisStore, queue: str, n: int, *, fail_every: int = 0) -> list[str]:
    """Enqueue ``n`` jobs and run them through the store: every ``fail_every``-th fails for good."""
    made = await store.enqueue_many([(new_job("noop", {"i": i}, queue=queue, max_retries=0), None) for i in range(n)])
    ids = [r.id for r in made]
    fail = {ids[i] for i in range(0, n, fail_every)} if fail_every else set()
    done = 0
    while done < n:
        leased = (await store.dequeue(queue, 100, "w-test")).jobs
        acks = [(j.job.id, j.token, "") for j in leased if j.job.id not in fail]
        await store.ack_many(queue, acks)
        for j in leased:
            if j.job.id in fail:
                await store.fail(queue, j.job.id, j.token, JobError("ValueError", "boom 42", "Traceback"), delay_ms=0)
        done += len(leased)
    return ids


async def scalar(db: HistoryDB, query: Any) -> Any:
    async with db.engine.connect() as conn:
        return (await conn.execute(query)).scalar()


async def succeeded_runs(db: HistoryDB) -> int:
    return int(await scalar(db, select(func.count()).select_from(job_runs).where(job_runs.c.outcome == "succeeded")))


async def test_runs_land_in_sql_with_their_outcome_and_the_stream_is_trimmed(
    store: RedisStore, migrated_db: HistoryDB, sinks: list[HistorySink], queue: str
) -> None:
    ids = await run_jobs(store, queue, 20, fail_every=4)
    sink = await start_sink(store, migrated_db, sinks)
    await wait_until(lambda: sink.written >= 60, message="3 events per job written")
    async with migrated_db.engine.connect() as conn:
        rows = {r.id: r for r in (await conn.execute(select(jobs))).all()}
        runs = {r.job_id: r for r in (await conn.execute(select(job_runs))).all()}
    assert set(rows) == set(ids)
    dead = {ids[i] for i in range(0, 20, 4)}
    assert {i for i, r in rows.items() if r.status == "dead"} == dead
    assert all(rows[i].status == "succeeded" and rows[i].type == "noop" for i in set(ids) - dead)
    assert all(runs[i].outcome == "failed" and runs[i].error_message == "boom 42" for i in dead)
    ok = runs[ids[1]]
    assert ok.outcome == "succeeded" and ok.worker == "w-test" and ok.attempt == 1 and ok.duration_ms is not None
    assert await store.redis.xlen(store.keys(queue).events) <= 1, "committed and acknowledged: trimmed"


async def test_a_queue_made_after_the_sink_started_is_read_without_a_restart(
    store: RedisStore, migrated_db: HistoryDB, sinks: list[HistorySink], queue: str
) -> None:
    sink = await start_sink(store, migrated_db, sinks)
    await run_jobs(store, queue, 5)
    await wait_until(lambda: sink.written >= 15, message="the new queue's events")
    assert await succeeded_runs(migrated_db) == 5


async def test_a_replayed_job_keeps_the_runs_from_before_its_replay(
    store: RedisStore, migrated_db: HistoryDB, sinks: list[HistorySink], queue: str
) -> None:
    [job_id] = await run_jobs(store, queue, 1, fail_every=1)
    await store.jobs.replay(job_id, queue)
    leased = (await store.dequeue(queue, 1, "w-again")).jobs
    await store.ack_many(queue, [(leased[0].job.id, leased[0].token, "")])
    sink = await start_sink(store, migrated_db, sinks)
    await wait_until(lambda: sink.written >= 6, message="both runs' events")
    async with migrated_db.engine.connect() as conn:
        runs = (await conn.execute(select(job_runs).order_by(job_runs.c.lease))).all()
        status = (await conn.execute(select(jobs.c.status))).scalar()
    assert [(r.attempt, r.outcome, r.worker) for r in runs] == [(1, "failed", "w-test"), (1, "succeeded", "w-again")]
    assert status == "succeeded"


async def test_a_sink_killed_mid_batch_leaves_its_entries_to_another(
    store: RedisStore, migrated_db: HistoryDB, sinks: list[HistorySink], queue: str, redis_url: str
) -> None:
    """The first sink (its own process) reads a batch and blocks on a held table lock; SIGKILL; the second
    sink takes the entries over once they have been idle ``claim_idle`` and writes every run."""
    ids = await run_jobs(store, queue, 50)
    async with hold_write_lock(migrated_db):
        victim = start_sink_process(redis_url, store.config.prefix, migrated_db)
        try:
            await wait_until(lambda: pending(store, queue), timeout=30, message="the first sink to read its batch")
        finally:
            victim.send_signal(signal.SIGKILL)
            victim.wait(10)
    assert await succeeded_runs(migrated_db) == 0
    await start_sink(store, migrated_db, sinks)
    await wait_until(lambda: all_runs(migrated_db, len(ids)), timeout=30, message="every run after the takeover")
    assert not await pending(store, queue)


@pytest.mark.slow
async def test_a_10_second_database_outage_in_the_middle_of_5000_jobs_loses_nothing(
    store: RedisStore, migrated_db: HistoryDB, sinks: list[HistorySink], queue: str
) -> None:
    outage = DatabaseOutage(migrated_db)
    db = await outage.start()
    try:
        await start_sink(store, db, sinks)
        first = await run_jobs(store, queue, 2_500)
        await wait_until(lambda: all_runs(db, 1), timeout=30, message="the sink to write before the outage")
        async with outage.down():
            rest = await run_jobs(store, queue, 2_500)
            [status] = await store.events.status([store.events.stream(queue)])
            assert status.oldest_uncommitted_ms is not None, "the backlog is visible while the database is down"
            await asyncio.sleep(10)  # the outage itself: the database is unreachable for 10 s
        await wait_until(lambda: all_runs(migrated_db, 5_000), timeout=120, message="every run after the outage")
        async with migrated_db.engine.connect() as conn:
            written = {r.id for r in (await conn.execute(select(jobs.c.id).where(jobs.c.status == "succeeded"))).all()}
        assert written == set(first) | set(rest)

        async def all_acknowledged() -> bool:  # the last batch is acknowledged just after its commit
            [after] = await store.events.status([store.events.stream(queue)])
            assert after.dropped == 0, "nothing may be dropped"
            return after.oldest_uncommitted_ms is None

        await wait_until(all_acknowledged, message="every event acknowledged")
    finally:
        await outage.close()


# -- helpers ----------------------------------------------------------------------------------------------


async def pending(store: RedisStore, queue: str) -> int:
    [status] = await store.events.status([store.events.stream(queue)])
    return status.pending


async def all_runs(db: HistoryDB, n: int) -> bool:
    try:
        return await succeeded_runs(db) >= n
    except Exception:  # the database is still coming back
        return False


class hold_write_lock:  # noqa: N801 - used as a context manager
    """Hold the jobs table's write lock in another connection (the sink's write waits behind it)."""

    def __init__(self, db: HistoryDB) -> None:
        self.db = db
        self._conn: Any = None

    async def __aenter__(self) -> None:
        self._conn = await self.db.engine.connect()
        if self.db.is_sqlite:
            await self._conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            await self._conn.begin()
            await self._conn.execute(text("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE"))

    async def __aexit__(self, *exc: object) -> None:
        if self.db.is_sqlite:
            await self._conn.exec_driver_sql("ROLLBACK")
        else:
            await self._conn.rollback()
        await self._conn.close()


SINK_PROCESS = textwrap.dedent(
    """
    import asyncio, sys
    from tickr.history.database import HistoryDB
    from tickr.history.sink import HistorySink, SinkConfig
    from tickr.store.connection import connect
    from tickr.store.store import RedisStore, StoreConfig

    async def main():
        url, prefix, db_url, schema = sys.argv[1:5]
        store = RedisStore(connect(url), StoreConfig(prefix=prefix))
        sink = HistorySink(store, HistoryDB(db_url, schema=schema or None), SinkConfig(batch_size=500))
        await sink.start()
        await asyncio.Event().wait()

    asyncio.run(main())
    """
)


def start_sink_process(redis_url: str, prefix: str, db: HistoryDB) -> subprocess.Popen[bytes]:
    args = [redis_url, prefix, db.url, db.schema or ""]
    return subprocess.Popen([sys.executable, "-c", SINK_PROCESS, *args], env=os.environ.copy())


class DatabaseOutage:
    """Makes the history database unreachable for the sink. PostgreSQL: the sink connects through a TCP proxy
    that is cut (connections drop, new ones are refused). SQLite: another connection holds the write lock."""

    def __init__(self, db: HistoryDB) -> None:
        self.db = db
        self.proxy: CuttableProxy | None = None
        self.via: HistoryDB | None = None

    async def start(self) -> HistoryDB:
        if self.db.is_sqlite:
            return self.db
        from sqlalchemy.engine import make_url

        url = make_url(self.db.url)
        self.proxy = CuttableProxy(url.host or "127.0.0.1", url.port or 5432)
        await self.proxy.start()
        self.via = HistoryDB(url.set(port=self.proxy.port).render_as_string(hide_password=False), schema=self.db.schema)
        return self.via

    def down(self) -> Any:
        if self.proxy is None:
            return hold_write_lock(self.db)
        return _Cut(self.proxy)

    async def close(self) -> None:
        if self.via is not None:
            await self.via.close()
        if self.proxy is not None:
            await self.proxy.close()


class _Cut:
    def __init__(self, proxy: CuttableProxy) -> None:
        self.proxy = proxy

    async def __aenter__(self) -> None:
        self.proxy.cut()

    async def __aexit__(self, *exc: object) -> None:
        self.proxy.restore()
