"""Fixtures for scheduler tests: an App on a key prefix of its own, a clocked store, services and a manager."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TestClock
from tickr.app import App
from tickr.config import Settings
from tickr.scheduler.manager import Schedules
from tickr.scheduler.service import SchedulerConfig, SchedulerService
from tickr.store.store import RedisStore


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test only: its schedules (one global set per prefix) are nobody else's."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def sapp(redis_url: str, tmp_path: Path, prefix: str) -> AsyncIterator[App]:
    app = App(settings=Settings(redis_url=redis_url, data_dir=tmp_path), prefix=prefix)
    yield app
    keys = [key async for key in app.store.redis.scan_iter(match=f"{prefix}:*", count=1000)]
    if keys:
        for key in keys:  # one by one: the keys span slots
            await app.store.redis.delete(key)
    await app.close()


@pytest.fixture
def cstore(sapp: App, clock: TestClock) -> RedisStore:
    """The app's store with the scripts reading ``clock`` instead of the Redis TIME."""
    return RedisStore(sapp.store.redis, sapp.store.config, now=clock)


@pytest.fixture
def schedules(sapp: App, cstore: RedisStore) -> Schedules:
    return Schedules(sapp, cstore)


ServiceFactory = Callable[..., SchedulerService]


@pytest.fixture
def make_service(sapp: App, cstore: RedisStore) -> ServiceFactory:
    """``make_service(**SchedulerConfig fields)``: a scheduler on the clocked store (drive it with run_once)."""

    def factory(**config: Any) -> SchedulerService:
        return SchedulerService(sapp, SchedulerConfig(**config), store=cstore)

    return factory
