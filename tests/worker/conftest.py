"""Fixtures for worker tests: the sample app bound to the test Redis, and a worker running in-process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.apps import sample
from tickr.app import App
from tickr.config import Settings
from tickr.worker.worker import Worker, WorkerConfig


@pytest.fixture
async def sample_app(redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[App]:
    monkeypatch.setenv("TICKR_REDIS_URL", redis_url)
    sample.app.settings = Settings(redis_url=redis_url, data_dir=tmp_path, lease_seconds=2)
    sample.app._store = None
    sample._client = None
    yield sample.app
    await sample.app.close()
    if sample._client is not None:
        await sample._client.aclose()
        sample._client = None


RunWorker = Callable[..., contextlib.AbstractAsyncContextManager[Worker]]


@pytest.fixture
def run_worker(queue: str) -> RunWorker:
    """``async with run_worker(app, concurrency=4) as worker:`` runs a worker for the block."""

    @contextlib.asynccontextmanager
    async def runner(app: App, **options: Any) -> AsyncIterator[Worker]:
        options.setdefault("queues", [queue])
        options.setdefault("grace_seconds", 5.0)
        worker = Worker(app, WorkerConfig(**options))
        task = asyncio.create_task(worker.run())
        await asyncio.wait_for(worker.started.wait(), 5)
        try:
            yield worker
        finally:
            if not worker.stopping:
                worker.stop()
            await asyncio.wait_for(task, 30)

    return runner
