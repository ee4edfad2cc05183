"""Workers only lease the task types they run: other jobs wait (parked) for a worker that runs them, and are
dead-lettered only once no live worker serving the queue has registered their type for the grace period."""

from __future__ import annotations

import time
from pathlib import Path

from tests.conftest import TestClock
from tests.waiting import wait_until
from tests.worker.conftest import RunWorker
from tickr.app import App
from tickr.config import Settings
from tickr.core.factory import new_job
from tickr.core.job import JobState, Priority
from tickr.store.store import RedisStore
from tickr.tasks import TaskOptions

TTL = 30


async def _enqueue(store: RedisStore, queue: str, job_type: str, n: int) -> list[str]:
    return [r.id for r in await store.enqueue_many([(new_job(job_type, {}, queue=queue), None) for _ in range(n)])]


async def _status(store: RedisStore, queue: str, job_id: str) -> str:
    return str(await store.redis.hget(store.keys(queue).job(job_id), "status"))


async def test_a_worker_never_leases_a_type_it_does_not_run(store: RedisStore, queue: str) -> None:
    await store.workers.register_types("builtins", [queue], ["noop"], TTL)
    await store.workers.register_types("app", [queue], ["noop", "emails.send"], TTL)
    emails = await _enqueue(store, queue, "emails.send", 5)
    noops = await _enqueue(store, queue, "noop", 2)

    mine = await store.dequeue(queue, 10, "builtins")
    assert sorted(j.job.id for j in mine.jobs) == sorted(noops)  # the emails were parked, not leased
    assert all([await _status(store, queue, i) == "queued" for i in emails])
    assert await store.redis.llen(store.keys(queue).pending("emails.send")) == 5
    assert await store.redis.zcard(store.keys(queue).type_marker("emails.send")) == 1  # app workers woken

    theirs = await store.dequeue(queue, 10, "app")
    assert [j.job.id for j in theirs.jobs] == emails  # in order, first attempt: nothing was burnt
    assert all(j.job.attempt == 1 for j in theirs.jobs)
    assert not await store.redis.hexists(store.keys(queue).parked, "emails.send")


async def test_a_job_cancelled_while_parked_never_runs(store: RedisStore, queue: str) -> None:
    await store.workers.register_types("builtins", [queue], ["noop"], TTL)
    await store.workers.register_types("app", [queue], ["report.big"], TTL)
    [job_id] = await _enqueue(store, queue, "report.big", 1)
    assert not (await store.dequeue(queue, 1, "builtins")).jobs
    assert await store.jobs.cancel(job_id, queue) == "cancelled"
    assert not (await store.dequeue(queue, 1, "app")).jobs
    assert await _status(store, queue, job_id) == "cancelled"


async def test_an_expired_type_registration_is_renewed_by_dequeue(store: RedisStore, queue: str) -> None:
    await _enqueue(store, queue, "noop", 1)
    batch = await store.dequeue(queue, 1, "fresh-worker", types=["noop"])
    assert len(batch.jobs) == 1
    assert await store.redis.smembers(store.keys(queue).worker_types("fresh-worker")) == {"noop"}


async def test_unrunnable_jobs_are_dead_lettered_after_the_grace_period(
    clocked_store: RedisStore, clock: TestClock, queue: str
) -> None:
    s = clocked_store
    await s.workers.register_types("builtins", [queue], ["noop"], TTL)
    [job_id] = await _enqueue(s, queue, "emails.send", 1)
    await s.dequeue(queue, 1, "builtins")  # parks it at t0

    assert await s.expire_unrunnable(queue, grace_ms=60_000) == (0, clock.now + 60_000)
    clock.advance(30)
    # A worker that runs the type registers (then goes away): the grace counts from its last registration.
    await s.redis.zadd(s.keys(queue).types, {"emails.send": clock.now})
    clock.advance(40)
    assert (await s.expire_unrunnable(queue, grace_ms=60_000))[0] == 0
    clock.advance(21)
    assert await s.expire_unrunnable(queue, grace_ms=60_000) == (1, None)
    job = await s.jobs.get_job(job_id, queue)
    assert job.status == JobState.DEAD
    assert job.last_error is not None
    assert job.last_error.message == f"no live worker on queue '{queue}' runs type 'emails.send'"
    assert await s.redis.zscore(s.keys(queue).dead, job_id) is not None


async def test_a_builtins_worker_beside_an_app_worker_burns_nothing(
    sample_app: App, redis_url: str, tmp_path: Path, queue: str, run_worker: RunWorker
) -> None:
    builtins = App(settings=Settings(redis_url=redis_url, data_dir=tmp_path))
    try:
        # Both block up to 30 s between looks: a parked job must still start at once on the app worker.
        async with (
            run_worker(builtins, wake_cap_seconds=30) as plain,
            run_worker(sample_app, wake_cap_seconds=30) as capable,
        ):
            started = time.monotonic()
            ids = [await sample_app.enqueue("record", {"value": i}, queue=queue) for i in range(20)]

            async def all_succeeded() -> bool:
                jobs = [await sample_app.get_job(i) for i in ids]
                return all(j.status == JobState.SUCCEEDED for j in jobs)

            await wait_until(all_succeeded, timeout=10, message="every record job to succeed")
            elapsed = time.monotonic() - started
        jobs = [await sample_app.get_job(i) for i in ids]
        assert all(j.attempt == 1 and j.last_error is None for j in jobs)
        assert plain.executor.failed == 0 and plain.executor.succeeded == 0
        assert capable.executor.succeeded == 20
        assert elapsed < 5, f"parked jobs waited for a wake-up cap ({elapsed:.2f}s)"
    finally:
        await builtins.close()


async def test_a_type_submitted_by_name_takes_the_defaults_its_workers_registered(
    store: RedisStore, redis_url: str, tmp_path: Path, queue: str
) -> None:
    name = f"emails.send.{queue}"
    defaults = TaskOptions(queue=queue, max_retries=5, priority=Priority.HIGH).to_dict()
    await store.workers.register("app-worker", [queue], 4, 0, TTL, tasks={name: defaults})
    elsewhere = App(settings=Settings(redis_url=redis_url, data_dir=tmp_path))  # an app without the task
    try:
        assert await elsewhere.knows_type(name)
        job = await elsewhere.get_job(await elsewhere.enqueue(name, {"to": "a@example.com"}))
        assert (job.queue, job.max_retries, job.priority) == (queue, 5, Priority.HIGH)
        explicit = await elsewhere.get_job(await elsewhere.enqueue(name, {}, max_retries=1))
        assert explicit.max_retries == 1  # what the caller says wins
    finally:
        await store.workers.deregister("app-worker", [queue])
        await store.redis.hdel("tickr:tasks", name)
        await elsewhere.close()
