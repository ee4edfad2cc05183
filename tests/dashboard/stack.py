"""A live stack for the browser tests: the API on a real port (uvicorn in a thread), a worker and the history sink."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from tests.history.rows import create_sqlite_schema
from tests.waiting import wait_until_sync
from tickr import current_job
from tickr.api import create_app
from tickr.app import App
from tickr.config import Settings
from tickr.history.database import HistoryDB
from tickr.history.sink import HistorySink, SinkConfig
from tickr.worker.worker import Worker, WorkerConfig

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
DOCS = Path(__file__).resolve().parents[2] / "docs"


def require_chromium() -> None:
    """Skip without Debian's chromium or Playwright locally; in CI their absence is a failure."""
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        missing.append("playwright (pip install -e '.[test]')")
    if missing:
        message = "the browser tests need " + " and ".join(missing)
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


@contextlib.contextmanager
def serve_api(settings: Settings) -> Iterator[str]:
    """The API of ``settings`` on a free loopback port, in a thread with its own event loop; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_sync(lambda: server.started, timeout=15, message="the API to start")
        yield base
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


FAILED_ONCE: set[str] = set()


def make_app(settings: Settings) -> App:
    """The worker's app: ``ok`` succeeds; ``flaky`` fails its first run (so it lands in the DLQ), then succeeds."""
    app = App(settings=settings)

    @app.task(name="ok")
    async def ok() -> str:
        return "fine"

    @app.task(name="flaky", max_retries=0)
    async def flaky() -> str:
        job_id = current_job().job_id
        if job_id not in FAILED_ONCE:
            FAILED_ONCE.add(job_id)
            raise RuntimeError("kaput on the first try")
        return "fine the second time"

    return app


@dataclass
class Stack:
    base: str
    settings: Settings
    app: App
    queue: str
    artifacts: Path
    http: httpx.AsyncClient = field(init=False)

    def __post_init__(self) -> None:
        headers = (
            {"Authorization": f"Bearer {self.settings.api_token.get_secret_value()}"} if self.settings.api_token else {}
        )
        self.http = httpx.AsyncClient(base_url=self.base, headers=headers)

    async def submit(self, job_type: str, **fields: Any) -> str:
        response = await self.http.post("/api/v1/jobs", json={"type": job_type, "queue": self.queue, **fields})
        assert response.status_code == 201, response.text
        job_id: str = response.json()["id"]
        return job_id


@contextlib.asynccontextmanager
async def live_stack(settings: Settings, queue: str, artifacts: Path) -> AsyncIterator[Stack]:
    """API + worker (on ``queue``) + history sink, all on the same Redis and SQLite history."""
    create_sqlite_schema(settings.data_dir)
    app = make_app(settings)
    db = HistoryDB.from_settings(settings)
    sink = HistorySink(app.store, db, SinkConfig(block_seconds=0.2, refresh_seconds=0.2))
    await sink.start()
    worker = Worker(app, WorkerConfig(queues=[queue], reaper=False, grace_seconds=2.0))
    running = asyncio.create_task(worker.run())
    await asyncio.wait_for(worker.started.wait(), 10)
    try:
        with serve_api(settings) as base:
            stack = Stack(base, settings, app, queue, artifacts)
            try:
                yield stack
            finally:
                await stack.http.aclose()
    finally:
        worker.stop()
        await asyncio.wait_for(running, 30)
        await sink.stop()
        await db.close()
        await app.close()


def clean_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path
