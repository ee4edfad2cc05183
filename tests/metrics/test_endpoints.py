"""The endpoints: the API's /metrics (public unless TICKR_METRICS_AUTH), a supervisor's merged endpoint, and
the time one scrape of the API takes with 50 queues."""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from tests.waiting import wait_until_sync
from tickr.api.app import create_app
from tickr.app import App
from tickr.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _sample(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


async def _client(settings: Settings, app: App) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(settings, app))
    return httpx.AsyncClient(transport=transport, base_url="http://t")


async def test_api_metrics_has_queue_gauges_and_is_public_by_default(app: App, queue: str) -> None:
    settings = app.settings.model_copy(update={"api_token": SecretStr("s3cret"), "history": False})
    await app.enqueue("noop", {}, queue=queue)
    async with await _client(settings, app) as client:
        reply = await client.get("/metrics")
        assert reply.status_code == 200
        assert _sample(reply.text, "tickr_queue_depth", queue=queue, priority="default") == 1
        assert _sample(reply.text, "tickr_redis_up") == 1
        assert (await client.get("/api/v1/queues")).status_code == 401  # the rest still needs the token


async def test_api_metrics_has_the_history_lag_when_history_is_on(app: App) -> None:
    async with await _client(app.settings.model_copy(update={"history": True}), app) as client:
        assert "tickr_history_lag_seconds" in (await client.get("/metrics")).text


async def test_api_metrics_behind_the_token_with_metrics_auth(app: App) -> None:
    settings = app.settings.model_copy(
        update={"api_token": SecretStr("s3cret"), "metrics_auth": True, "history": False}
    )
    async with await _client(settings, app) as client:
        assert (await client.get("/metrics")).status_code == 401
        ok = await client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200


async def test_no_metrics_route_when_metrics_are_off(app: App) -> None:
    settings = app.settings.model_copy(update={"metrics": False, "history": False})
    async with await _client(settings, app) as client:
        assert (await client.get("/metrics")).status_code == 404


async def test_scrape_time_with_50_queues(app: App, queue: str) -> None:
    queues = [f"{queue}-{i}" for i in range(50)]
    await app.enqueue_many([{"type": "noop", "payload": {}, "queue": q} for q in queues for _ in range(3)])
    settings = app.settings.model_copy(update={"history": False})
    async with await _client(settings, app) as client:
        await client.get("/metrics")  # warm: connections, imports
        times = []
        for _ in range(15):
            started = time.perf_counter()
            reply = await client.get("/metrics")
            times.append(time.perf_counter() - started)
        assert all(_sample(reply.text, "tickr_queue_depth", queue=q) == 3 for q in queues)
    median_ms = statistics.median(times) * 1000
    print(f"\n/metrics with {len(queues)}+ queues: median {median_ms:.1f} ms over {len(times)} scrapes")
    assert median_ms < 250
    await app.store.queues.delete(queue)
    for q in queues:
        await app.store.queues.delete(q)


@pytest.mark.slow
def test_supervisor_serves_one_merged_endpoint(redis_url: str, queue: str, tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "TICKR_REDIS_URL": redis_url, "TICKR_DATA_DIR": str(tmp_path), "TICKR_HISTORY": "false"}
    cmd = [sys.executable, "-m", "tickr", "worker", "--queues", queue, "--processes", "2", "--metrics-port", str(port)]
    proc = subprocess.Popen([*cmd, "--no-scheduler"], cwd=ROOT, env=env)
    try:

        def scrape() -> str | None:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            except httpx.HTTPError:
                return None

        wait_until_sync(scrape, 30, message="the supervisor's endpoint")
        client = App(settings=Settings(redis_url=redis_url, data_dir=tmp_path))
        import asyncio

        async def fill() -> None:
            await client.enqueue_many([{"type": "noop", "payload": {}, "queue": queue} for _ in range(40)])
            await client.close()

        asyncio.run(fill())
        wait_until_sync(
            lambda: _sample(scrape() or "", "tickr_jobs_succeeded_total", queue=queue) == 40, 30, message="40 merged"
        )
        text = scrape() or ""
        assert _sample(text, "tickr_jobs_dequeued_total", queue=queue) == 40
        assert text.count("# TYPE tickr_jobs_succeeded_total counter") <= 1
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
