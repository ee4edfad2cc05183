"""``JobAdmin.list_jobs`` cursor paging across queues and structures, ties in zset scores, sparse filters."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import TestClock
from tickr.core.errors import ValidationError
from tickr.core.factory import new_job
from tickr.core.job import Job, JobError
from tickr.store.job_admin import JobAdmin
from tickr.store.store import RedisStore, StoreConfig


@pytest.fixture
def private_store(store: RedisStore, clock: TestClock) -> RedisStore:
    """A store with a prefix of its own (so "all queues" means this test's queues) and a frozen clock."""
    return RedisStore(store.redis, StoreConfig(prefix=f"tl{uuid.uuid4().hex[:8]}"), now=clock)


async def walk(inspector: JobAdmin, limit: int, **filters: str) -> tuple[list[Job], int]:
    """Every job the listing yields, following cursors; and the number of calls."""
    jobs: list[Job] = []
    cursor = None
    calls = 0
    while True:
        page = await inspector.list_jobs(limit=limit, cursor=cursor, **filters)
        calls += 1
        jobs += page.jobs
        cursor = page.next_cursor
        if cursor is None:
            return jobs, calls
        assert calls < 100


async def test_paging_covers_every_structure_of_every_queue_once(private_store: RedisStore) -> None:
    s = private_store
    expected: dict[str, str] = {}
    for queue in ("qa", "qb"):
        for i in range(3):
            job = new_job("noop", {"i": i}, queue=queue, priority="high" if i else "low")
            await s.enqueue(job)
            expected[job.id] = "queued"
        later = new_job("noop", queue=queue)
        await s.enqueue(later, s.clock_arg() + 60_000)
        expected[later.id] = "scheduled"
        leased = await s.dequeue(queue, 2, "w")
        for item in leased.jobs:
            expected[item.job.id] = "active"
        victim = leased.jobs[0]
        await s.fail(queue, victim.job.id, victim.token, JobError("E", "x"), delay_ms=0, permanent=True)
        expected[victim.job.id] = "dead"
        finished = leased.jobs[1]
        await s.ack_many(queue, [(finished.job.id, finished.token, "")])
        expected[finished.job.id] = "succeeded"

    inspector = JobAdmin(s)
    for limit in (1, 2, 3, 50):
        jobs, _ = await walk(inspector, limit)
        assert len(jobs) == len({job.id for job in jobs}) == len(expected)
        assert {job.id: job.status.value for job in jobs} == expected
        assert [job.queue for job in jobs] == sorted(job.queue for job in jobs)

    for status in ("queued", "scheduled", "active", "dead", "succeeded"):
        jobs, _ = await walk(inspector, 2, status=status)
        assert {job.id for job in jobs} == {i for i, st in expected.items() if st == status}
    jobs, _ = await walk(inspector, 2, queue="qb", status="queued")
    assert {job.queue for job in jobs} == {"qb"}
    assert len(jobs) == 1  # 3 enqueued, 2 leased


async def test_ties_in_zset_scores_page_without_gaps(private_store: RedisStore) -> None:
    s = private_store  # the frozen clock gives every dead job the same score
    ids = []
    for _ in range(7):
        job = new_job("noop", queue="q")
        await s.enqueue(job)
        leased = (await s.dequeue("q", 1, "w")).jobs[0]
        await s.fail("q", job.id, leased.token, JobError("E", "x"), delay_ms=0, permanent=True)
        ids.append(job.id)
    jobs, calls = await walk(JobAdmin(s), 3, status="dead")
    assert sorted(job.id for job in jobs) == sorted(ids)
    assert len(jobs) == 7
    assert calls == 3


async def test_sparse_type_filter_is_bounded_per_call(private_store: RedisStore) -> None:
    s = private_store
    wanted = set()
    for i in range(60):
        job = new_job("rare" if i % 20 == 0 else "common", queue="q")
        await s.enqueue(job)
        if job.type == "rare":
            wanted.add(job.id)
    inspector = JobAdmin(s)
    page = await inspector.list_jobs(limit=1, job_type="rare")
    assert len(page.jobs) <= 1
    jobs, _ = await walk(inspector, 1, job_type="rare")
    assert {job.id for job in jobs} == wanted


async def test_bad_cursors_are_validation_errors(private_store: RedisStore) -> None:
    inspector = JobAdmin(private_store)
    for cursor in ("garbage", "eyJxIjoxfQ", "eyJxIjoicSIsImsiOiJub3BlIiwicCI6MH0"):
        with pytest.raises(ValidationError) as info:
            await inspector.list_jobs(cursor=cursor)
        assert set(info.value.errors) == {"cursor"}
