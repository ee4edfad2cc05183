"""``tickr load``: a small mixed workload through local worker processes, via Redis and via the HTTP API."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner

from tests.waiting import wait_until
from tickr.api import create_app
from tickr.app import App
from tickr.cli.bench import register
from tickr.config import Settings, embedded_url_file
from tickr.loadgen.load import LoadConfig, NoLiveWorker, parse_mix, plan, run_load
from tickr.loadgen.target import WorkerProcess, serving

runner = CliRunner()


def _cli() -> typer.Typer:
    cli = typer.Typer()
    register(cli)
    return cli


def test_load_cli_runs_a_mix_to_the_end(
    redis_url: str, queue: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("TICKR_REDIS_URL", raising=False)
    monkeypatch.setenv("TICKR_DATA_DIR", str(tmp_path))  # the Redis is found as a `tickr up` here is
    embedded_url_file(Settings()).write_text(redis_url + "\n")
    out = tmp_path / "load.json"
    args = ["load", "-n", "300", "-w", "3", "-q", queue, "--workers", "1", "--concurrency", "16"]
    args += ["--pct-noop", "70", "--pct-flaky", "10", "--pct-fail", "10", "--pct-sleep", "10", "--sleep-ms", "5"]
    args += ["--flaky-attempts", "1", "--priority-mix", "critical=1,high=2,default=5,low=2", "--json", str(out)]
    result = runner.invoke(_cli(), args)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["completed"] and report["jobs"] == 300 and report["queue"] == queue
    assert report["succeeded"] + report["dead"] == 300
    assert report["dead"] > 0 and report["retries"] >= report["dead"]
    assert report["workers"] == "1 x 16"
    assert report["startup_s"] > 0 and report["drain_with_startup_s"] == pytest.approx(
        report["startup_s"] + report["drain_s"], abs=0.002
    )
    assert "throughput" in result.output and "p95 wait" in result.output
    assert "drain time (workers already running)" in result.output
    assert "drain time incl. worker start-up" in result.output


def test_plan_follows_the_mix_and_the_retry_budget() -> None:
    config = LoadConfig(
        redis_url="redis://unused", n=1_000, pct_noop=50, pct_flaky=25, pct_fail=25, flaky_attempts=2, seed=7
    )
    config.priority_mix = parse_mix("high=1,low=1")
    specs = plan(config, "q")
    types = Counter(spec["type"] for spec in specs)
    assert set(types) == {"noop", "flaky", "fail"} and 400 < types["noop"] < 600
    assert {spec["priority"] for spec in specs} == {"high", "low"}
    flaky = next(spec for spec in specs if spec["type"] == "flaky")
    assert flaky["payload"] == {"fail_times": 2} and flaky["max_retries"] == 2


def test_bad_mix_is_refused() -> None:
    for bad in ("urgent=1", "high=x", "high=0"):
        with pytest.raises(ValueError, match="priority mix"):
            parse_mix(bad)
    with pytest.raises(ValueError, match="pct"):
        LoadConfig(redis_url="redis://unused", pct_noop=0)


async def test_load_via_http_api(redis_url: str, queue: str, tmp_path: Path) -> None:
    api = create_app(Settings(redis_url=redis_url, data_dir=tmp_path))
    async with api.router.lifespan_context(api):
        config = LoadConfig(
            redis_url=redis_url,
            n=120,
            submitters=2,
            batch=50,
            via="http",
            api_url="http://tickr.test",
            queue=queue,
            workers=1,
            transport=httpx.ASGITransport(app=api),
        )
        report = await run_load(config)
    assert report["completed"] and report["succeeded"] == 120 and report["via"] == "http"


def test_noop_is_what_the_other_percentages_leave() -> None:
    config = LoadConfig(redis_url="redis://unused", pct_flaky=15, pct_fail=5)  # the seed's mix
    assert config.pct_noop == 80
    assert config.queue == "default"  # the running system's queue, not a fresh one nobody serves
    with pytest.raises(ValueError, match="more than 100"):
        LoadConfig(redis_url="redis://unused", pct_flaky=60, pct_fail=50)


def test_load_without_a_live_worker_says_so_quickly(redis_url: str, queue: str) -> None:
    started = time.monotonic()
    result = runner.invoke(_cli(), ["load", "-n", "50", "-q", queue, "--redis-url", redis_url])
    assert result.exit_code == 1, result.output
    assert time.monotonic() - started < 2.5
    assert f"no live worker serves queue {queue!r}" in result.output and "--workers N" in result.output


async def test_load_on_a_running_worker_counts_only_its_own_jobs_and_notices_the_worker_leave(
    redis_url: str, queue: str
) -> None:
    worker = WorkerProcess(redis_url, queue, concurrency=4).start()
    app = App(settings=Settings(redis_url=redis_url))
    try:
        await wait_until(lambda: serving(app, queue), 30, message="the worker to register")
        first = await run_load(LoadConfig(redis_url=redis_url, n=100, queue=queue, pct_fail=50, seed=1))
        second = await run_load(LoadConfig(redis_url=redis_url, n=100, queue=queue))  # the queue has a history now
        for report in (first, second):
            assert report["completed"] and report["jobs"] == 100 and report["workers"] == "external: 1 x 4"
            assert report["startup_s"] is None and report["drain_with_startup_s"] is None
        assert first["dead"] > 0 and first["retries"] >= first["dead"]
        assert second["succeeded"] == 100 and second["dead"] == 0 and second["retries"] == 0

        finished: list[int] = []
        slow = LoadConfig(redis_url=redis_url, n=200, queue=queue, pct_sleep=100, sleep_ms=50)
        loading = asyncio.create_task(run_load(slow, lambda _sent, done, _total: finished.append(done)))
        await wait_until(lambda: finished and finished[-1] > 0, 20, message="the first jobs to finish")
        await asyncio.to_thread(worker.stop)  # graceful: it deregisters
        left = time.monotonic()
        stalled = await asyncio.wait_for(loading, 10)
        assert time.monotonic() - left < 3
        assert not stalled["completed"] and "no live worker has served" in stalled["stopped"]
        with pytest.raises(NoLiveWorker, match="no live worker serves"):
            await run_load(LoadConfig(redis_url=redis_url, n=10, queue=queue))
    finally:
        await app.close()
        worker.kill()
