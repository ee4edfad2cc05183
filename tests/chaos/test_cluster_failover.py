"""Chaos: a Redis Cluster primary is SIGKILLed while jobs flow; its replica takes over.

A private 3-primary + 3-replica cluster (``tests/cluster/servers.py``, node timeout 2 s). The SDK enqueues in
a loop, recording every acknowledged id; a ``tickr worker`` subprocess (with its scheduler) runs them and a
``tickr api`` subprocess answers. The primary that owns the queue's slot is killed; once its replica has taken
over, the killed node is started again (empty: it rejoins as the new primary's replica, as a supervised server
would). Nothing of tickr is restarted: the clients follow the new slot map by themselves.

Figures: recovery (kill -> first acknowledged enqueue after it), acknowledged enqueues lost (no job in Redis
and never run), with ``TICKR_REDIS_MIN_REPLICAS`` 0 and 1. With 1 (every state change WAITs for a replica)
none may be lost; with 0 the few writes the replica had not received when the primary died may be.
The short form: one failover of each; the full form (``TICKR_CHAOS_FULL=1``): five.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from tests.chaos.harness import APP, ExecLog, Procs, env_for, figures, forms, free_port, submit_until, wait_succeeded
from tests.cluster.servers import Cluster, free_ports, start_or_skip
from tests.waiting import wait_until
from tickr import App, Settings
from tickr.scheduler.manager import Schedules

NODE_TIMEOUT_MS = 2000


@pytest.fixture
def chaos_cluster(tmp_path: Path) -> object:
    cluster = Cluster(tmp_path / "cluster", free_ports(6, 7030), node_timeout_ms=NODE_TIMEOUT_MS)
    start_or_skip(cluster, "the Redis Cluster")
    yield cluster
    cluster.stop()


@pytest.mark.parametrize("min_replicas", [0, 1])
@forms(short_timeout=60, full_timeout=300)
async def test_a_primary_sigkilled_while_jobs_flow(
    full: bool, min_replicas: int, chaos_cluster: Cluster, procs: Procs, exec_log: ExecLog, tmp_path: Path, queue: str
) -> None:
    cluster = chaos_cluster
    failovers = 5 if full else 1
    api_port = free_port()
    env = env_for(
        cluster.url,
        exec_log.directory,
        TICKR_REDIS_MIN_REPLICAS=str(min_replicas),
        TICKR_DATA_DIR=str(tmp_path / "data"),
        TICKR_API_PORT=str(api_port),
        TICKR_HISTORY="false",
        TICKR_LEASE_SECONDS="6",  # a lease whose ack met the failover is taken back soon
    )
    worker = procs.tickr("worker", ["worker", APP, "--queues", queue, "--concurrency", "16"], env)
    api = procs.tickr("api", ["api"], env)
    app = App(settings=Settings(redis_url=cluster.url, redis_min_replicas=min_replicas, data_dir=tmp_path))
    try:
        await wait_until(
            lambda: _serving(app, queue, worker, procs), timeout=30, message="the worker to serve the queue"
        )
        schedule = await Schedules(app).create("noop", cron="* * * * * *", queue=f"{queue}-cron")
        acked: list[tuple[str, float]] = []  # (id, when the acknowledged enqueue was sent)
        refused: list[float] = []
        stop = asyncio.Event()

        async def submit() -> None:
            await submit_until(app, queue, stop, acked, refused)

        submitters = [asyncio.create_task(submit()) for _ in range(4)]
        recoveries: list[float] = []
        api_recoveries: list[float] = []
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}", timeout=5) as http:
            await wait_until(lambda: _api_ok(http), timeout=30, message="the API to answer")
            for _ in range(failovers):
                await asyncio.sleep(1.0)
                primary = await asyncio.to_thread(cluster.owner, app.store.keys(queue).stats)
                killed_at = time.monotonic()
                await asyncio.to_thread(cluster.server(primary).kill)
                await wait_until(
                    lambda p=primary: _moved(cluster, app, queue, p), timeout=30, message="a replica to take over"
                )
                await asyncio.to_thread(cluster.server(primary).start)  # back, empty, as the new primary's replica
                await wait_until(lambda t=killed_at: any(at > t for _, at in acked), timeout=30, message="an ack")
                recoveries.append(min(at for _, at in acked if at > killed_at) - killed_at)
                await wait_until(lambda: _api_ok(http), timeout=30, message="the API to answer again")
                api_recoveries.append(time.monotonic() - killed_at)
                await asyncio.to_thread(_wait_synced, cluster)
            await asyncio.sleep(1.0)
            stop.set()
            await asyncio.gather(*submitters)
            assert api.poll() is None, procs.output("api")
        ids = [job_id for job_id, _ in acked]
        fired_before = (await Schedules(app).require(schedule.id)).fired
        jobs = await app.store.jobs.get_jobs([(queue, i) for i in ids])
        missing = {i for i, job in zip(ids, jobs, strict=True) if job is None}
        present = [i for i in ids if i not in missing]
        drain_began = time.monotonic()
        try:
            await wait_succeeded(app, queue, present, quiet_for=40, cap=90)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{procs.output('worker')}") from None
        exec_log.read()
        lost = [i for i in missing if not exec_log.starts.get(i)]

        async def fires_again() -> bool:
            return (await Schedules(app).require(schedule.id)).fired > fired_before

        await wait_until(fires_again, timeout=10, message="the scheduler to fire after the failovers")
        assert worker.poll() is None, procs.output("worker")
        drained_s = time.monotonic() - drain_began
        figures(
            f"cluster-failover[{'full' if full else 'short'},min_replicas={min_replicas}]",
            failovers=failovers,
            acked=len(ids),
            lost=len(lost),
            refused=len(refused),
            recovery_s=max(recoveries),
            recovery_mean_s=sum(recoveries) / len(recoveries),
            api_recovery_s=max(api_recoveries),
            duplicated=len(exec_log.duplicated()),
            drain_s=drained_s,
        )
        if min_replicas >= 1:
            assert not lost, f"{len(lost)} acknowledged enqueues lost with MIN_REPLICAS={min_replicas}: {lost[:5]}"
    finally:
        await app.close()


async def _serving(app: App, queue: str, worker: object, procs: Procs) -> bool:
    assert worker.poll() is None, procs.output("worker")  # type: ignore[attr-defined]
    return any(queue in w.queues for w in await app.store.workers.live())


async def _api_ok(http: httpx.AsyncClient) -> bool:
    try:
        return (await http.get("/api/v1/queues")).status_code == 200
    except httpx.TransportError:
        return False


def _moved(cluster: Cluster, app: App, queue: str, old: int) -> bool:
    return cluster.healthy() and cluster.owner(app.store.keys(queue).stats) != old


def _wait_synced(cluster: Cluster) -> None:
    from tests.cluster.servers import wait_until as wait_sync

    wait_sync(cluster.replicas_synced, 30, "the restarted node in sync")
