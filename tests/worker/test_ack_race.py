"""A heartbeat that reads a lease just before its ack lands must not cancel the (finished) job."""

from __future__ import annotations

import asyncio

from tickr.app import App
from tickr.core.factory import new_job
from tickr.store.store import LeasedJob
from tickr.worker.worker import Worker, WorkerConfig, _InFlight


async def test_lease_reported_lost_while_acking_is_not_cancelled(app: App, queue: str) -> None:
    worker = Worker(app, WorkerConfig(queues=[queue]))
    job = new_job("noop", {}, queue=queue)
    task = asyncio.create_task(asyncio.sleep(10))
    worker.in_flight[job.id] = _InFlight(LeasedJob(job, "1"), task)
    worker.completer.acking.add(job.id)
    worker._lease_lost(queue, job.id)
    assert job.id in worker.in_flight and not task.cancelled()
    worker.completer.acking.discard(job.id)
    worker._lease_lost(queue, job.id)
    await asyncio.sleep(0)
    assert job.id not in worker.in_flight and task.cancelled()
