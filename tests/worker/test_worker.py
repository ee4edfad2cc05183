"""The worker in-process against real Redis: handlers, outcomes, retries, timeouts, priorities, burst mode."""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import UTC, datetime

import pytest

from tests.apps import sample
from tests.waiting import wait_until
from tests.worker.conftest import RunWorker
from tickr import App, JobState
from tickr.core.errors import IdempotencyConflict, ValidationError
from tickr.core.factory import new_job
from tickr.worker.worker import Worker, WorkerConfig


async def final_state(app: App, job_id: str, timeout: float = 10.0) -> JobState:
    async def done() -> JobState | None:
        job = await app.get_job(job_id)
        return job.status if job.status.is_final else None

    return await wait_until(done, timeout, message=f"job {job_id} to finish")


async def test_async_and_sync_tasks_and_builtins_succeed(sample_app: App, queue: str, run_worker: RunWorker) -> None:
    a = await sample.record.enqueue(7, queue=queue)
    b = await sample.sync_record.enqueue(value=21, queue=queue)
    c = await sample_app.enqueue("noop", {}, queue=queue)
    async with run_worker(sample_app, concurrency=4):
        for job_id in (a, b, c):
            assert await final_state(sample_app, job_id) == JobState.SUCCEEDED
    assert (await sample_app.get_job(a)).result["value"] == 7  # type: ignore[index]
    assert (await sample_app.get_job(b)).result == {"value": 42, "sync": True}


async def test_a_type_no_worker_runs_goes_to_dlq_after_the_grace(
    sample_app: App, queue: str, run_worker: RunWorker
) -> None:
    sample_app.settings = sample_app.settings.model_copy(update={"unknown_type_grace_seconds": 0.3})
    job_id = await sample_app.enqueue("no.such.type", {"x": 1}, queue=queue, max_retries=3)
    async with run_worker(sample_app):
        assert await final_state(sample_app, job_id) == JobState.DEAD
    job = await sample_app.get_job(job_id)
    assert job.last_error is not None
    assert job.last_error.message == f"no live worker on queue '{queue}' runs type 'no.such.type'"
    assert job.attempt == 0  # never leased: no attempt was spent
    assert await sample_app.store.redis.zscore(sample_app.store.keys(queue).dead, job_id) is not None


async def test_retries_follow_backoff_then_succeed(sample_app: App, queue: str, run_worker: RunWorker) -> None:
    job_id = await sample.flaky_until.enqueue(3, queue=queue)
    async with run_worker(sample_app):
        assert await final_state(sample_app, job_id) == JobState.SUCCEEDED
    log = await sample_app.store.redis.lrange(sample.runs_key(queue) + ":log", 0, -1)
    times = [float(entry.rsplit(":", 1)[1]) for entry in log]
    assert [int(entry.split(":")[1]) for entry in log] == [1, 2, 3]
    # base 0.2 s, no jitter: the gaps are about 0.2 s and 0.4 s
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert 0.18 <= gaps[0] < 1.0 and 0.38 <= gaps[1] < 1.5


async def test_retry_after_and_permanent(sample_app: App, queue: str, run_worker: RunWorker) -> None:
    later = await sample.retry_after.enqueue(0.3, queue=queue)
    never = await sample.permanent.enqueue(queue=queue)
    async with run_worker(sample_app):
        assert await final_state(sample_app, later) == JobState.SUCCEEDED
        assert await final_state(sample_app, never) == JobState.DEAD
    dead = await sample_app.get_job(never)
    assert dead.attempt == 1 and dead.last_error and dead.last_error.type == "Permanent"
    assert "never retry" in dead.last_error.message and "Traceback" in dead.last_error.traceback
    assert (await sample_app.get_job(later)).attempt == 2


async def test_timeout_fails_the_job(sample_app: App, queue: str, run_worker: RunWorker) -> None:
    job_id = await sample.too_slow.enqueue(queue=queue)
    async with run_worker(sample_app):
        assert await final_state(sample_app, job_id) == JobState.DEAD
    error = (await sample_app.get_job(job_id)).last_error
    assert error is not None and error.type == "JobTimeout"


async def test_bad_payload_is_permanent(sample_app: App, queue: str, run_worker: RunWorker) -> None:
    with pytest.raises(ValidationError):  # refused at submit time...
        await sample_app.enqueue("record", {"nope": 1}, queue=queue)
    # ...and a job written by an older version of the app (not checked then) dies for good when it runs.
    job_id = (await sample_app.store.enqueue(new_job("record", {"nope": 1}, queue=queue))).id
    async with run_worker(sample_app):
        assert await final_state(sample_app, job_id) == JobState.DEAD
    error = (await sample_app.get_job(job_id)).last_error
    assert error is not None and "payload does not match" in error.message


async def test_delayed_job_runs_when_due(sample_app: App, queue: str, run_worker: RunWorker) -> None:
    async with run_worker(sample_app) as worker:
        # The worker is idle: its first fetch found nothing and its marker listeners are running.
        await wait_until(
            lambda: not worker.fetcher.maybe_more and all(lst.started.is_set() for lst in worker.listeners),
            timeout=5,
            message="the worker to go idle",
        )
        due = time.time() + 0.5
        job_id = await sample.record.enqueue(queue=queue, delay=0.5)
        assert (await sample_app.get_job(job_id)).status == JobState.SCHEDULED
        assert await final_state(sample_app, job_id) == JobState.SUCCEEDED
    started = (await sample_app.get_job(job_id)).started_at
    assert started is not None and started / 1000 >= due - 0.005


async def test_burst_mode_drains_and_exits(sample_app: App, queue: str) -> None:
    ids = await sample_app.enqueue_many(
        [{"type": "record", "payload": {"value": i}, "queue": queue} for i in range(200)]
    )
    worker = Worker(sample_app, WorkerConfig(queues=[queue], concurrency=16, burst=True))
    await asyncio.wait_for(worker.run(), 30)
    runs = await sample_app.store.redis.hgetall(sample.runs_key(queue))
    assert len(runs) == 200 and set(runs.values()) == {"1"} and set(runs) == set(ids)


async def test_priorities_are_weighted(sample_app: App, queue: str) -> None:
    jobs = [
        {"type": "record", "payload": {}, "queue": queue, "priority": p} for p in ("low", "critical") for _ in range(30)
    ]
    await sample_app.enqueue_many(jobs)
    worker = Worker(sample_app, WorkerConfig(queues=[queue], concurrency=1, burst=True))
    await asyncio.wait_for(worker.run(), 30)
    log = await sample_app.store.redis.lrange(sample.runs_key(queue) + ":log", 0, 8)
    ids = [entry.split(":")[0] for entry in log]
    prios = [(await sample_app.get_job(i)).priority for i in ids]
    # with weights 8:1 the first nine runs hold exactly one low job, not zero (no starvation)
    assert prios.count("low") == 1 and prios.count("critical") == 8


async def test_graceful_stop_waits_for_in_flight(sample_app: App, queue: str, run_worker: RunWorker) -> None:
    ids = [await sample.slow.enqueue(0.5, queue=queue) for _ in range(10)]
    async with run_worker(sample_app, concurrency=10) as worker:
        await wait_until(lambda: _started(sample_app, queue, 10), message="10 jobs to start")
        worker.stop()
    for job_id in ids:
        assert (await sample_app.get_job(job_id)).status == JobState.SUCCEEDED


async def test_stop_after_grace_hands_leases_back(sample_app: App, queue: str, run_worker: RunWorker) -> None:
    job_id = await sample.slow.enqueue(30, queue=queue)
    async with run_worker(sample_app, grace_seconds=0.2):
        await wait_until(lambda: _started(sample_app, queue, 1), message="the job to start")
    job = await sample_app.get_job(job_id)
    assert job.status == JobState.QUEUED and job.attempt == 0
    assert await sample_app.store.redis.zcard(sample_app.store.keys(queue).active) == 0


async def _started(app: App, queue: str, count: int) -> bool:
    return bool(await app.store.redis.llen(sample.runs_key(queue) + ":started") >= count)


async def test_sdk_enqueue_sync_and_idempotency(sample_app: App, queue: str) -> None:
    first = await asyncio.to_thread(sample.record.enqueue_sync, 1, queue=queue, idempotency_key="order-1")
    second = await sample.record.enqueue(1, queue=queue, idempotency_key="order-1")
    assert first == second
    assert (await sample_app.get_job(first)).payload == {"value": 1}
    with pytest.raises(IdempotencyConflict):  # the same key for a different request
        await sample.record.enqueue(2, queue=queue, idempotency_key="order-1")


async def test_unserialisable_payload_is_refused(sample_app: App, queue: str) -> None:
    payload = {"when": datetime.now(UTC)}
    with pytest.raises(TypeError, match=r"payload\.when \(datetime\)"):
        await sample_app.enqueue("record", payload, queue=queue)
