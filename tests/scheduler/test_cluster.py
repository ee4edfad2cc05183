"""Schedules on a one-node Valkey cluster: the shebang scripts refuse cross-slot keys, so a layout mistake fails."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import TestClock
from tests.waiting import wait_until
from tickr.app import App
from tickr.config import Settings
from tickr.scheduler.manager import Schedules
from tickr.scheduler.service import SchedulerService
from tickr.store.store import RedisStore


@pytest.fixture
async def cluster_app(cluster_url: str, tmp_path: Path) -> AsyncIterator[App]:
    app = App(settings=Settings(redis_url=cluster_url, redis_cluster=True, data_dir=tmp_path))
    yield app
    await app.close()


async def test_schedules_fire_on_a_cluster(cluster_app: App, clock: TestClock, queue: str) -> None:
    store = RedisStore(cluster_app.store.redis, cluster_app.store.config, now=clock)
    schedules = Schedules(cluster_app, store)
    s = await schedules.create("noop", cron="* * * * * *", queue=queue, overlap=False)
    other = await schedules.create("noop", cron="* * * * * *", queue=queue)
    await schedules.update(other.id, payload={"x": 1})
    service = SchedulerService(cluster_app, store=store)
    for _ in range(2):
        clock.advance(1)
        await service.run_once()
    assert (await schedules.require(s.id)).skipped_overlap == 1
    assert (await schedules.require(other.id)).fired == 2
    assert [e.outcome for e in (await schedules.history(other.id)).items] == ["queued", "queued"]
    await schedules.delete(s.id)
    assert len((await schedules.list_schedules(include_deleted=True)).items) >= 2
    assert await service.run_once() >= 0


async def test_the_real_clock_and_wake_ups_on_a_cluster(cluster_app: App) -> None:
    service = SchedulerService(cluster_app)
    await service.start()
    try:
        await asyncio.wait_for(service.started.wait(), 5)
        created = await Schedules(cluster_app).create("noop", cron="* * * * * *", queue="c1")

        async def fired() -> bool:
            return (await Schedules(cluster_app).require(created.id)).fired >= 1

        await wait_until(fired, timeout=5, message="a fire on the cluster")
    finally:
        await service.stop()
