"""A heartbeat that reads a lease just before its ack lands must not cancel the (finished) job."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.waiting import wait_until
from tickr.app import App
from tickr.core.factory import new_job
from tickr.store.store import LeasedJob
from tickr.worker.worker import Worker, WorkerConfig, _InFlight


async def test_lease_reported_lost_while_acking_is_not_cancelled(app: App, queue: str) -> None:
    worker = Worker(app, WorkerConfig(queues=[queue]))
    job = new_job("noop", {}, queue=queue)
    task = asyncio.create_task(asyncio.sleep(10))  # stands for a running job: cancelled, never waited out
    worker.in_flight[job.id] = _InFlight(LeasedJob(job, "1"), task)
    worker.completer.acking.add(job.id)
    worker._lease_lost(queue, job.id)
    assert job.id in worker.in_flight and not task.cancelled()
    worker.completer.acking.discard(job.id)
    worker._lease_lost(queue, job.id)
    await asyncio.wait([task], timeout=5)  # the cancellation is delivered once the task runs
    assert job.id not in worker.in_flight and task.cancelled()


async def test_a_landed_ack_stays_guarded_until_its_task_finishes(app: App, queue: str) -> None:
    """The ack's reply resolves the job's future; the task resumes a loop turn later. A heartbeat
    answered in that window used to take the landed ack for a lease lost to another worker."""
    await app.enqueue("noop", {}, queue=queue)
    worker = Worker(app, WorkerConfig(queues=[queue]))
    leased = (await app.store.dequeue(queue, 1, worker.id)).jobs[0]
    flush = worker.completer._flush

    async def flush_then_heartbeat(q: str, items: list[Any]) -> None:
        await flush(q, items)
        # Same loop step: the ack has landed and resolved the job's future, its task has not resumed.
        assert still_in_flight(leased.job.id)
        worker._lease_lost(q, leased.job.id)

    def still_in_flight(job_id: str) -> bool:
        return job_id in worker.in_flight  # what a heartbeat reply arriving now would act on

    worker.completer._flush = flush_then_heartbeat  # type: ignore[method-assign]

    async def run() -> bool:
        return await worker.completer.ack(queue, leased.job.id, leased.token, "")

    task = asyncio.create_task(run())
    worker.in_flight[leased.job.id] = _InFlight(leased, task)  # type: ignore[arg-type]
    task.add_done_callback(lambda t: worker._finished(leased.job.id, t))  # type: ignore[arg-type]
    assert await asyncio.wait_for(asyncio.shield(task), 5) is True
    assert not task.cancelled()
    # The task's done callback (``_finished``) runs a loop turn after the task ends.
    await wait_until(lambda: leased.job.id not in worker.in_flight, timeout=5, message="the done callback")
    assert leased.job.id not in worker.in_flight and leased.job.id not in worker.completer.acking
