"""Fixtures for the HTTP API tests: an in-process client (ASGI, lifespan run), helpers to make dead jobs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from tests.history.rows import create_sqlite_schema
from tickr.api import create_app
from tickr.config import Settings
from tickr.core.factory import new_job
from tickr.core.job import JobError
from tickr.store.store import RedisStore

MAX_BODY = 64 * 1024


@pytest.fixture
def api_settings(redis_url: str, tmp_path: Path) -> Settings:
    create_sqlite_schema(tmp_path)  # the SQL history the API falls back to (SQLite in the data directory)
    return Settings(redis_url=redis_url, data_dir=tmp_path, max_payload_bytes=MAX_BODY)


@pytest.fixture
async def api(api_settings: Settings) -> AsyncIterator[FastAPI]:
    """The API with its lifespan running (the App is made at startup and closed at shutdown)."""
    app = create_app(api_settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(api: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://tickr.test") as http:
        yield http


async def make_dead(store: RedisStore, queue: str, job_type: str = "noop", message: str = "boom") -> str:
    """Put one job of ``job_type`` into the DLQ of ``queue`` the way a worker would: lease it, fail it for good.

    ``queue`` must have no other ready job (the dequeue would lease that one).
    """
    job = new_job(job_type, {"n": 1}, queue=queue)
    await store.enqueue(job)
    leased = await store.dequeue(queue, 1, "test-worker")
    assert [j.job.id for j in leased.jobs] == [job.id]
    error = JobError(type="RuntimeError", message=message, traceback="Traceback (most recent call last):\n  ...")
    outcome = await store.fail(queue, job.id, leased.jobs[0].token, error, delay_ms=0, permanent=True)
    assert outcome.kind == "dead"
    return job.id


def problem_fields(response: httpx.Response) -> dict[str, str]:
    """``{field: message}`` of a 422 problem response."""
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == 422
    return {e["field"]: e["message"] for e in body["errors"]}
