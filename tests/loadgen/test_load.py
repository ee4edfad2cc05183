"""``tickr load``: a small mixed workload through local worker processes, via Redis and via the HTTP API."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner

from tickr.api import create_app
from tickr.cli.bench import register
from tickr.config import Settings
from tickr.loadgen.load import LoadConfig, parse_mix, plan, run_load

runner = CliRunner()


def test_load_cli_runs_a_mix_to_the_end(redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    cli = typer.Typer()
    register(cli)
    out = tmp_path / "load.json"
    args = ["load", "-n", "300", "-w", "3", "--redis-url", redis_url, "--workers", "1", "--concurrency", "16"]
    args += ["--pct-noop", "70", "--pct-flaky", "10", "--pct-fail", "10", "--pct-sleep", "10", "--sleep-ms", "5"]
    args += ["--flaky-attempts", "1", "--priority-mix", "critical=1,high=2,default=5,low=2", "--json", str(out)]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["completed"] and report["jobs"] == 300
    assert report["succeeded"] + report["dead"] == 300
    assert report["dead"] > 0 and report["retries"] >= report["dead"]
    assert report["workers"] == "1 x 16"
    assert "throughput" in result.output and "p95 wait" in result.output


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


async def test_load_via_http_api(redis_url: str, tmp_path: Path) -> None:
    api = create_app(Settings(redis_url=redis_url, data_dir=tmp_path))
    async with api.router.lifespan_context(api):
        config = LoadConfig(
            redis_url=redis_url,
            n=120,
            submitters=2,
            batch=50,
            via="http",
            api_url="http://tickr.test",
            workers=1,
            transport=httpx.ASGITransport(app=api),
        )
        report = await run_load(config)
    assert report["completed"] and report["succeeded"] == 120 and report["via"] == "http"
