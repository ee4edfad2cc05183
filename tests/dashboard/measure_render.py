"""Server-side render time of dashboard pages with 50 queues in Redis and N rows of SQL history (SQLite).

Run: ``.venv/bin/python -m tests.dashboard.measure_render [history_rows] [repeats]`` (needs Redis on 127.0.0.1:6379).
Prints the median and the range of ``repeats`` GETs per page (in-process ASGI: no network, the app's own time).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import orjson
from sqlalchemy import create_engine

from tests.history.rows import create_sqlite_schema
from tickr.api import create_app
from tickr.config import Settings
from tickr.core.factory import new_job
from tickr.history.schema import jobs

QUEUES = 50
JOBS_PER_QUEUE = 200
TYPES = ("email", "resize", "report", "sync", "noop")


def fill_history(path: Path, rows: int) -> float:
    """``rows`` finished jobs over the last 7 days across the queues, written with executemany; returns seconds."""
    started = time.perf_counter()
    engine = create_engine(f"sqlite:///{path}")
    now = int(time.time() * 1000)
    chunk = 50_000
    payload = orjson.dumps({"n": 1}).decode()
    with engine.begin() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        cursor = raw.cursor()
        columns = ["id", "queue", "type", "status", "priority", "payload", "attempt", "max_retries", "execution"]
        columns += ["created_at", "updated_at", "finished_at", "event_seq", "error_type", "error_message"]
        sql = f"INSERT INTO {jobs.name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        for base in range(0, rows, chunk):
            batch = []
            for i in range(base, min(base + chunk, rows)):
                at = now - (rows - i) * 600  # ~7 days for 1M rows
                dead = i % 50 == 0
                batch.append(
                    (
                        f"h-{i:08d}",
                        f"bench-{i % QUEUES:02d}",
                        TYPES[i % len(TYPES)],
                        "dead" if dead else "succeeded",
                        "default",
                        payload,
                        1,
                        3,
                        "at_least_once",
                        at,
                        at + 5,
                        at + 5,
                        i + 1,
                        "TimeoutError" if dead else None,
                        f"upstream timed out after {i % 30}s" if dead else None,
                    )
                )
            cursor.executemany(sql, batch)
    engine.dispose()
    return time.perf_counter() - started


async def measure(history_rows: int, repeats: int) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="tickr-render-"))
    db = create_sqlite_schema(data_dir)
    print(f"history: {history_rows:,} rows written in {fill_history(db, history_rows):.1f}s ({db})")
    settings = Settings(redis_url="redis://127.0.0.1:6379/0", data_dir=data_dir)
    app = create_app(settings)
    tag = uuid.uuid4().hex[:6]
    queues = [f"bench-{tag}-{i:02d}" for i in range(QUEUES)]
    async with app.router.lifespan_context(app):
        store = app.state.tickr.app.store
        for q in queues:
            await store.enqueue_many([(new_job(TYPES[n % 5], {"n": n}, queue=q), None) for n in range(JOBS_PER_QUEUE)])
        print(f"redis: {QUEUES} queues x {JOBS_PER_QUEUE} queued jobs (plus whatever else the server holds)")
        pages = {
            "overview": "/dashboard",
            "jobs (live, Redis)": "/dashboard/jobs",
            "jobs (live, one queue, type)": f"/dashboard/jobs?queue={queues[7]}&type=email",
            "jobs (history, since 1h)": "/dashboard/jobs?since=1h",
            "jobs (history, error text)": "/dashboard/jobs?text=timed+out+after+7s",
            "job page (history)": f"/dashboard/jobs/h-{history_rows - 1:08d}",
        }
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://tickr.test") as http:
                for name, path in pages.items():
                    assert (await http.get(path)).status_code == 200, path  # warm up
                    times = []
                    for _ in range(repeats):
                        t0 = time.perf_counter()
                        response = await http.get(path)
                        times.append((time.perf_counter() - t0) * 1000)
                        assert response.status_code == 200, path
                    print(
                        f"{name:32s} median {statistics.median(times):7.1f} ms"
                        f"  (min {min(times):.1f}, max {max(times):.1f}, n={repeats})"
                    )
        finally:
            for q in queues:
                await store.queues.delete(q)


if __name__ == "__main__":
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 9
    asyncio.run(measure(rows, n))
