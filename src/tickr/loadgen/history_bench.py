"""The ``history`` benchmark: drain throughput with SQL history off, on with SQLite, on with PostgreSQL, back to
back, and the sink's lag: seconds from the burst's last finished job until its last run is in SQL.

The sink runs as its own process (``tickr history``, as in production) while the worker drains.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from tickr.app import App
from tickr.config import Settings
from tickr.history.database import HistoryDB
from tickr.history.database import database_url as async_url
from tickr.history.schema import job_runs
from tickr.loadgen.scenarios import Outcome, fill, read_jobs
from tickr.loadgen.target import WorkerProcess, new_queue

SINK_START_SECONDS = 30.0
LAG_LIMIT_SECONDS = 300.0


async def history(url: str, n: int, database_url: str | None = None) -> Outcome:
    """Drain ``n`` jobs three ways (history off, SQLite, PostgreSQL when ``database_url`` is given)."""
    off, _ = await _drain(url, n, history=False)
    metrics = {"off_jobs_per_s": off}
    notes = {}
    with tempfile.TemporaryDirectory(prefix="tickr-bench-history-") as tmp:
        sqlite_url = f"sqlite+aiosqlite:///{Path(tmp) / 'history.db'}"
        rate, lag = await _drain(url, n, history=True, database_url=sqlite_url, data_dir=tmp)
        metrics |= {"sqlite_jobs_per_s": rate, "sqlite_ratio": rate / off if off else 0.0, "sqlite_lag_s": lag}
    if database_url:
        server = async_url(Settings(database_url=database_url))
        async with _fresh_database(server) as pg_url:
            rate, lag = await _drain(url, n, history=True, database_url=pg_url)
        metrics |= {"postgres_jobs_per_s": rate, "postgres_ratio": rate / off if off else 0.0, "postgres_lag_s": lag}
    else:
        notes["postgres"] = "skipped (pass --history-db postgresql://...)"
    return Outcome(metrics, notes)


async def _drain(
    url: str, n: int, *, history: bool, database_url: str | None = None, data_dir: str | None = None
) -> tuple[float, float]:
    """(drain jobs/s, sink lag s): the worker drains ``n`` jobs while a sink (when ``history``) writes SQL."""
    app = App(settings=Settings(redis_url=url, history=history))
    queue = new_queue()
    sink: subprocess.Popen[bytes] | None = None
    db = HistoryDB(database_url) if database_url else None
    try:
        ids = await fill(app, queue, 1)  # the queue exists before the sink looks for queues
        if history and database_url:
            sink = _start_sink(url, database_url, data_dir)
            await _wait_for_sink(app, queue, sink)
        ids += await fill(app, queue, n - 1)
        env = {"TICKR_HISTORY": "true" if history else "false"}
        worker = WorkerProcess(url, queue, burst=True, extra_env=env).start()
        await asyncio.to_thread(worker.wait, 600.0)
        rows = await read_jobs(app, queue, ids, ["started_at", "finished_at"])
        starts = [int(r["started_at"]) for r in rows if r["started_at"]]
        ends = [int(r["finished_at"]) for r in rows if r["finished_at"]]
        span_ms = max(1, max(ends) - min(starts)) if starts and ends else 0
        rate = n / (span_ms / 1000) if span_ms else 0.0
        lag = await _sink_lag(db, queue, n, max(ends) / 1000 if ends else time.time()) if db else 0.0
        return rate, lag
    finally:
        if sink is not None:
            sink.send_signal(signal.SIGTERM)
            await asyncio.to_thread(sink.wait, 30)
        if db is not None:
            await db.close()
        await app.store.queues.delete(queue)
        await app.close()


def _start_sink(url: str, database_url: str, data_dir: str | None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TICKR_REDIS_URL": url, "TICKR_DATABASE_URL": database_url, "TICKR_AUTO_MIGRATE": "true"}
    if data_dir:
        env["TICKR_DATA_DIR"] = data_dir
    code = (
        "import asyncio; from tickr.app import App; from tickr.config import Settings;"
        " from tickr.runtime.services import run_history; asyncio.run(run_history(App(settings=Settings())))"
    )
    return subprocess.Popen([sys.executable, "-c", code], env=env)


async def _wait_for_sink(app: App, queue: str, sink: subprocess.Popen[bytes]) -> None:
    """Until the sink has made its consumer group on the queue's stream (it has found the queue)."""
    deadline = time.monotonic() + SINK_START_SECONDS
    stream = app.store.events.stream(queue)
    while time.monotonic() < deadline:
        if sink.poll() is not None:
            raise RuntimeError(f"the history sink exited with code {sink.returncode}")
        [status] = await app.store.events.status([stream])
        if status.has_group:
            return
        await asyncio.sleep(0.05)
    raise RuntimeError("the history sink did not start reading within 30 s")


async def _sink_lag(db: HistoryDB, queue: str, n: int, last_finished_s: float) -> float:
    """Seconds from the last job's finish until ``n`` succeeded runs of ``queue`` are in SQL."""
    query = (
        select(func.count()).select_from(job_runs).where(job_runs.c.queue == queue, job_runs.c.outcome == "succeeded")
    )
    deadline = time.monotonic() + LAG_LIMIT_SECONDS
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):  # the tables may not exist yet
            async with db.engine.connect() as conn:
                if (await conn.execute(query)).scalar_one() >= n:
                    return max(0.0, time.time() - last_finished_s)
        await asyncio.sleep(0.05)
    return float("inf")


@contextlib.asynccontextmanager
async def _fresh_database(server_url: str) -> AsyncIterator[str]:
    """A new, empty database on the PostgreSQL server of ``server_url``, dropped afterwards."""
    name = f"tickr_bench_{uuid.uuid4().hex[:8]}"
    admin = HistoryDB(server_url)
    engine = admin.engine.execution_options(isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin.url).set(database=name).render_as_string(hide_password=False)
    finally:
        async with engine.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.close()
