"""A SIGKILLed worker's job runs again within seconds, long before its 30 s lease would expire: the surviving
worker's reaper sees the dead worker's heartbeat lapse (``TICKR_WORKER_LAPSE_SECONDS``, 6) and releases it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from tests.apps import sample
from tests.waiting import wait_until
from tests.worker.test_processes import Workers, _serving, started
from tickr import App, JobState

KILL_TO_RERUN_MAX_SECONDS = 12.0  # 6 s lapse + 2 s heartbeat with defaults, slack for a slow CI host


@pytest.fixture
def procs(redis_url: str, queue: str) -> Iterator[Workers]:
    w = Workers(redis_url, queue)
    yield w
    w.cleanup()


async def test_sigkilled_workers_job_reruns_within_the_lapse(sample_app: App, queue: str, procs: Workers) -> None:
    job_id = await sample.slow.enqueue(120.0, queue=queue)
    first = procs.start("--concurrency", "1", lease=30.0)  # the default lease: it must not be what frees the job
    await wait_until(lambda: _runs(sample_app, queue, 1), timeout=20, message="the job to start")
    second = procs.start("--concurrency", "1", lease=30.0)
    await wait_until(lambda: _serving(sample_app, queue, 2), timeout=20, message="the second worker serving")
    first.kill()
    killed = time.monotonic()
    await asyncio.to_thread(first.wait, 10)
    runs = await wait_until(lambda: _runs(sample_app, queue, 2), timeout=25, message="the job to run again")
    elapsed = time.monotonic() - killed
    print(f"kill -> re-run {elapsed:.2f}s", flush=True)
    assert elapsed < KILL_TO_RERUN_MAX_SECONDS
    assert runs == [f"{job_id}:{first.pid}", f"{job_id}:{second.pid}"]
    job = await sample_app.get_job(job_id)
    assert job.status == JobState.ACTIVE and job.attempt == 2
    stats = await sample_app.store.redis.hgetall(sample_app.store.keys(queue).stats)
    assert stats.get("reaped") == "1"
    assert await sample_app.store.redis.zrange(sample_app.store.keys(queue).beats, 0, -1) == [
        (await sample_app.store.redis.hget(sample_app.store.keys(queue).job(job_id), "worker"))
    ]


async def _runs(app: App, queue: str, n: int) -> list[str] | None:
    found = await started(app, queue)
    return found if len(found) >= n else None
