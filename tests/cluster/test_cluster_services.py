"""Every part on a real cluster: a worker subprocess, the scheduler, the API (jobs, queues, /metrics), the
history sink; with ``TICKR_REDIS_MIN_REPLICAS=1``."""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path

import httpx
from sqlalchemy import func, select

from tests.chaos.harness import APP, ExecLog, Procs, env_for, wait_succeeded
from tests.cluster.servers import Cluster
from tests.history.rows import create_sqlite_schema
from tests.waiting import wait_until
from tickr.api.app import create_app
from tickr.app import App
from tickr.history.database import HistoryDB
from tickr.history.schema import job_runs
from tickr.history.sink import HistorySink, SinkConfig
from tickr.scheduler.manager import Schedules
from tickr.scheduler.service import SchedulerService


def names(n: int) -> list[str]:
    return [f"c-{uuid.uuid4().hex[:10]}" for _ in range(n)]


async def test_a_worker_subprocess_runs_jobs_of_queues_on_every_primary(
    real_cluster: Cluster, capp: App, tmp_path: Path
) -> None:
    queues = names(6)
    assert len({real_cluster.owner(capp.store.keys(q).stats) for q in queues}) > 1
    (tmp_path / "runs").mkdir()
    procs = Procs(tmp_path)
    try:
        env = env_for(real_cluster.url, tmp_path / "runs", TICKR_REDIS_MIN_REPLICAS="1")
        worker = procs.start(
            "worker",
            [sys.executable, "-m", "tickr", "worker", APP, "--queues", ",".join(queues), "--no-scheduler"],
            env,
        )
        ids = {q: [await capp.enqueue("chaos.step", {"ms": 1}, queue=q) for _ in range(20)] for q in queues}
        for q in queues:
            assert worker.poll() is None, procs.output("worker")
            await wait_succeeded(capp, q, ids[q], quiet_for=20, cap=60)
        log = ExecLog(tmp_path / "runs").read()
        assert sum(len(v) for v in ids.values()) == len(log.starts)
        assert any(set(queues) <= set(w.queues) for w in await capp.store.workers.live())
    finally:
        procs.cleanup()


async def test_the_scheduler_fires_on_the_cluster(capp: App) -> None:
    q = names(1)[0]
    service = SchedulerService(capp)
    await service.start()
    try:
        await asyncio.wait_for(service.started.wait(), 5)
        created = await Schedules(capp).create("noop", cron="* * * * * *", queue=q)

        async def fired() -> bool:
            return (await Schedules(capp).require(created.id)).fired >= 2

        await wait_until(fired, timeout=8, message="two fires on the cluster")
        assert (await capp.store.queues.stats([q]))[0].queued >= 2
    finally:
        await service.stop()


async def test_the_api_and_metrics_on_the_cluster(capp: App, tmp_path: Path) -> None:
    create_sqlite_schema(tmp_path)
    queues = names(5)
    settings = capp.settings.model_copy(update={"history": False})
    api = create_app(settings, capp)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://t") as client:
        made = []
        for q in queues:
            r = await client.post("/api/v1/jobs", json={"type": "noop", "queue": q})
            assert r.status_code == 201, r.text
            made.append(r.json()["id"])
        got = await client.get(f"/api/v1/jobs/{made[-1]}")
        assert got.status_code == 200 and got.json()["queue"] == queues[-1]
        listed = await client.get("/api/v1/queues")
        assert listed.status_code == 200
        assert set(queues) <= {row["name"] for row in listed.json()["queues"]}
        page = await client.get("/api/v1/jobs", params={"limit": 200})
        assert set(made) <= {j["id"] for j in page.json()["jobs"]}
        metrics = (await client.get("/metrics")).text
        assert all(f'queue="{q}"' in metrics for q in queues)
        cancel = await client.post(f"/api/v1/jobs/{made[0]}/cancel")
        assert cancel.status_code == 200, cancel.text


async def test_the_history_sink_reads_every_node(capp: App, tmp_path: Path) -> None:
    db = HistoryDB(f"sqlite+aiosqlite:///{tmp_path / 'h.db'}")
    from tickr.history import migrate

    await migrate.upgrade(db)
    queues = names(6)
    store = capp.store
    ids = []
    for q in queues:
        ids += [r.id for r in await store.enqueue_many([(capp.build_job("noop", {}, queue=q), None) for _ in range(3)])]
        batch = await store.dequeue(q, 10, "w-sink")
        await store.ack_many(q, [(j.job.id, j.token, "") for j in batch.jobs])
    sink = HistorySink(store, db, SinkConfig(batch_size=200, block_seconds=0.1, refresh_seconds=0.1))
    await sink.start()
    try:

        async def landed() -> bool:
            async with db.engine.connect() as conn:
                query = select(func.count()).select_from(job_runs).where(job_runs.c.outcome == "succeeded")
                return int((await conn.execute(query)).scalar_one()) >= len(ids)

        await wait_until(landed, timeout=15, message="every run in SQL")
    finally:
        await sink.stop()
        await db.close()
