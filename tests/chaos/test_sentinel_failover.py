"""Chaos: the primary of a Sentinel-watched pair is SIGKILLed while jobs flow; the sentinels promote its replica.

A primary, a replica and three sentinels (``down-after-milliseconds 1000``, ``failover-timeout 3000``) on free
loopback ports; ``TICKR_REDIS_URL=redis+sentinel://s1,s2,s3/mymaster``. The SDK enqueues in a loop, a
``tickr worker`` and a ``tickr api`` subprocess serve; nothing of tickr is restarted. They must follow the new
primary by themselves within the sentinels' failover time plus a few seconds. Short form: one failover; full
form (``TICKR_CHAOS_FULL=1``): three, each time the old primary is started again (it rejoins as a replica).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.chaos.harness import APP, ExecLog, Procs, env_for, figures, forms, free_port, submit_until, wait_succeeded
from tests.cluster.servers import SentinelSet, free_ports, start_or_skip
from tests.waiting import wait_until
from tickr import App, Settings
from tickr.store.connection import connect

DOWN_AFTER_MS, FAILOVER_TIMEOUT_MS = 1000, 3000
FOLLOW_SLACK_S = 8.0  # on top of the sentinels' own time: redis-py's retry backoff, process scheduling


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[SentinelSet]:
    watched = SentinelSet(
        tmp_path / "sentinel",
        free_ports(5, 7080),
        down_after_ms=DOWN_AFTER_MS,
        failover_timeout_ms=FAILOVER_TIMEOUT_MS,
    )
    start_or_skip(watched, "the sentinel set")
    yield watched
    watched.stop()


async def test_a_sentinel_url_reaches_the_primary(sentinels: SentinelSet) -> None:
    client = connect(sentinels.url + "?sentinel_password=&db=0")
    try:
        assert await client.set("tickr-sentinel-probe", "1")
        assert (await client.info("server"))["tcp_port"] == sentinels.primary_port()
    finally:
        await client.aclose()


@forms(short_timeout=60, full_timeout=240)
async def test_the_primary_sigkilled_under_sentinel(
    full: bool, sentinels: SentinelSet, procs: Procs, exec_log: ExecLog, tmp_path: Path, queue: str
) -> None:
    failovers = 3 if full else 1
    api_port = free_port()
    env = env_for(
        sentinels.url,
        exec_log.directory,
        TICKR_DATA_DIR=str(tmp_path / "data"),
        TICKR_API_PORT=str(api_port),
        TICKR_HISTORY="false",
        TICKR_LEASE_SECONDS="6",
    )
    worker = procs.tickr("worker", ["worker", APP, "--queues", queue, "--concurrency", "16", "--no-scheduler"], env)
    api = procs.tickr("api", ["api"], env)
    app = App(settings=Settings(redis_url=sentinels.url, data_dir=tmp_path))
    try:

        async def serving() -> bool:
            assert worker.poll() is None, procs.output("worker")
            return any(queue in w.queues for w in await app.store.workers.live())

        await wait_until(serving, timeout=30, message="the worker to serve the queue")
        acked: list[tuple[str, float]] = []  # (id, when its enqueue was sent)
        refused: list[float] = []
        stop = asyncio.Event()

        async def submit() -> None:
            await submit_until(app, queue, stop, acked, refused)

        async def api_ok(http: httpx.AsyncClient) -> bool:
            try:
                return (await http.get("/api/v1/queues")).status_code == 200
            except httpx.TransportError:
                return False

        submitters = [asyncio.create_task(submit()) for _ in range(4)]
        recoveries: list[float] = []
        runs_after: list[float] = []
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}", timeout=5) as http:
            await wait_until(lambda: api_ok(http), timeout=30, message="the API to answer")
            for _ in range(failovers):
                await asyncio.sleep(1.0)
                old = sentinels.primary_port()
                assert old is not None
                killed_at, killed_wall = time.monotonic(), time.time()
                await asyncio.to_thread(sentinels.server(old).kill)
                await wait_until(
                    lambda o=old: sentinels.primary_port() not in (None, o), timeout=30, message="a promotion"
                )
                await wait_until(lambda t=killed_at: any(at > t for _, at in acked), timeout=30, message="an ack")
                recoveries.append(min(at for _, at in acked if at > killed_at) - killed_at)
                await wait_until(lambda: api_ok(http), timeout=30, message="the API after the failover")

                def ran_after(t: float = killed_wall) -> bool:
                    return exec_log.read().first_start_after(t) is not None

                await wait_until(ran_after, timeout=30, message="the worker to run a job after the failover")
                runs_after.append((exec_log.first_start_after(killed_wall) or killed_wall) - killed_wall)
                await asyncio.to_thread(sentinels.server(old).start)  # rejoins as the new primary's replica
            await asyncio.sleep(1.0)
            stop.set()
            await asyncio.gather(*submitters)
        assert api.poll() is None, procs.output("api")
        ids = [job_id for job_id, _ in acked]
        jobs = await app.store.jobs.get_jobs([(queue, i) for i in ids])
        present = [i for i, job in zip(ids, jobs, strict=True) if job is not None]
        await wait_succeeded(app, queue, present, quiet_for=40, cap=90)
        exec_log.read()
        lost = [i for i, job in zip(ids, jobs, strict=True) if job is None and not exec_log.starts.get(i)]
        figures(
            f"sentinel-failover[{'full' if full else 'short'}]",
            failovers=failovers,
            acked=len(ids),
            lost=len(lost),
            refused=len(refused),
            recovery_s=max(recoveries),
            worker_recovery_s=max(runs_after),
        )
        bound = (DOWN_AFTER_MS + FAILOVER_TIMEOUT_MS) / 1000 + FOLLOW_SLACK_S
        assert max(recoveries) < bound and max(runs_after) < bound, (recoveries, runs_after)
        assert worker.poll() is None, procs.output("worker")
    finally:
        await app.close()
