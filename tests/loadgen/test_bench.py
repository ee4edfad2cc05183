"""``tickr bench`` end to end with tiny sizes: the report's shape, and every job ran. No timing assertions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis
import typer
from typer.testing import CliRunner

from tickr.cli.bench import register
from tickr.loadgen.bench import BenchConfig
from tickr.loadgen.scenarios import percentile

runner = CliRunner()


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    monkeypatch.setenv("COLUMNS", "200")
    app = typer.Typer()
    register(app)
    return app


def leftover_bench_keys(url: str) -> list[str]:
    client = redis.Redis.from_url(url, decode_responses=True)
    return [k for k in client.scan_iter(match="tickr:{bench-*", count=10_000)] + [
        q for q in client.smembers("tickr:queues") if str(q).startswith("bench-")
    ]


def test_quick_bench_against_a_given_redis(cli: typer.Typer, redis_url: str, tmp_path: Path) -> None:
    before = set(leftover_bench_keys(redis_url))
    out = tmp_path / "out.json"
    result = runner.invoke(
        cli, ["bench", "--quick", "-n", "200", "--runs", "1", "--json", str(out), "--redis-url", redis_url]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert set(report) >= {"machine", "config", "settings", "results", "targets"}
    assert report["machine"]["cores"] >= 1 and report["machine"]["server"]
    results = report["results"]
    assert set(results) == {"enqueue", "drain", "drain2", "latency", "delayed", "memory", "history"}
    for name in ("drain", "drain2"):
        assert results[name]["metrics"]["succeeded"] == 200, results[name]
        assert results[name]["metrics"]["jobs_per_s"] > 0
    assert results["latency"]["metrics"]["ran"] == 50
    assert results["delayed"]["metrics"]["ran"] == 20
    assert results["delayed"]["metrics"]["early"] == 0, "a delayed job started before its due time"
    assert results["memory"]["notes"]["job_encoding"] == "listpack"
    assert results["memory"]["metrics"]["bytes_per_job"] > 0
    assert results["enqueue"]["metrics"]["batched_per_s"] > 0
    history = results["history"]["metrics"]
    assert history["off_jobs_per_s"] > 0 and history["sqlite_jobs_per_s"] > 0
    assert 0 <= history["sqlite_lag_s"] < 60, "the sink wrote every run of the burst"
    assert results["history"]["notes"]["postgres"].startswith("skipped")
    assert all(len(r["runs"].get(m, [0])) == 1 for r in results.values() for m in r["runs"])
    assert "drain, 1 worker process" in result.output
    assert set(leftover_bench_keys(redis_url)) <= before, "the bench left keys behind"


def test_bench_starts_its_own_valkey_without_a_url(cli: typer.Typer, tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    result = runner.invoke(cli, ["bench", "--quick", "-n", "100", "--scenarios", "drain", "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["machine"]["server_source"] == "private embedded Valkey"
    assert report["results"]["drain"]["metrics"]["succeeded"] == 100


def test_unknown_scenario_is_a_usage_error(cli: typer.Typer) -> None:
    result = runner.invoke(cli, ["bench", "--scenarios", "drain,warp", "--redis-url", "redis://127.0.0.1:1/0"])
    assert result.exit_code == 2
    assert "warp" in result.output


def test_quick_config_keeps_explicit_sizes() -> None:
    config = BenchConfig.quick(n=300, runs=2, scenarios=("drain",))
    assert (config.n, config.runs, config.scenarios) == (300, 2, ("drain",))
    assert BenchConfig.quick().n < BenchConfig().n


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([], 99) == 0.0
