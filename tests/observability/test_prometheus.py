"""tickr checked by a real Prometheus: a live ``tickr api`` and a live worker scraped, known work done, every
dashboard and alert expression evaluated through Prometheus's HTTP API, one alert provoked, promtool passing."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import IN_CI
from tests.waiting import wait_until_sync

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "tickr.json"
# Exported only with TICKR_HISTORY on; this test runs the API with history off (tests/metrics checks the series).
NOT_YET_EXPORTED = {"tickr_history_lag_seconds"}

pytestmark = pytest.mark.slow


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (scripts/test.sh installs Debian's prometheus package)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def dashboard_exprs() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [t["expr"] for p in panels for t in p["targets"]]


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def grafana_to_promql(expr: str, queue: str) -> str:
    return expr.replace("$queue", queue).replace("$__rate_interval", "1m")


class Prom:
    def __init__(self, url: str) -> None:
        self.client = httpx.Client(base_url=url, timeout=5)

    def query(self, expr: str) -> list[dict[str, Any]]:
        reply = self.client.get("/api/v1/query", params={"query": expr}).json()
        assert reply["status"] == "success", (expr, reply)
        return list(reply["data"]["result"])

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def alerts(self) -> list[dict[str, Any]]:
        return list(self.client.get("/api/v1/alerts").json()["data"]["alerts"])


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("wb")
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def stack(redis_url: str, queue: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A live ``tickr api``, a live worker with ``--metrics-port`` and a Prometheus scraping both every second."""
    prometheus = _tool("prometheus")
    _tool("promtool")
    api_port, worker_port, prom_port = free_port(), free_port(), free_port()
    env = {**os.environ, "TICKR_REDIS_URL": redis_url, "TICKR_HISTORY": "false", "TICKR_DATA_DIR": str(tmp_path)}
    env.pop("TICKR_METRICS_PORT", None)
    tickr = [sys.executable, "-m", "tickr"]
    procs = [
        _spawn([*tickr, "api", "--port", str(api_port)], env, tmp_path / "api.log"),
        _spawn(
            [
                *tickr,
                "worker",
                "tests.observability.obs_app:app",
                "--queues",
                queue,
                "--concurrency",
                "4",
                "--metrics-port",
                str(worker_port),
                "--no-scheduler",
            ],
            env,
            tmp_path / "worker.log",
        ),
    ]
    # The test's copy of the rules: alerts fire on the first evaluation that matches.
    rules = yaml.safe_load(ALERTS.read_text())
    for group in rules["groups"]:
        group["interval"] = "1s"
        for rule in group["rules"]:
            rule["for"] = "0s"
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rules))
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": ["alerts.yml"],
        "scrape_configs": [
            {"job_name": "tickr-api", "static_configs": [{"targets": [f"127.0.0.1:{api_port}"]}]},
            {"job_name": "tickr-worker", "static_configs": [{"targets": [f"127.0.0.1:{worker_port}"]}]},
        ],
    }
    config_path = tmp_path / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    procs.append(
        _spawn(
            [
                prometheus,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
            env,
            tmp_path / "prometheus.log",
        )
    )
    try:
        yield {
            "api": f"http://127.0.0.1:{api_port}",
            "worker": f"http://127.0.0.1:{worker_port}",
            "prom": Prom(f"http://127.0.0.1:{prom_port}"),
            "config": config_path,
            "dir": tmp_path,
        }
    finally:
        for proc in reversed(procs):
            _stop(proc)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_real_prometheus_scrapes_evaluates_and_alerts(stack: dict[str, Any], queue: str) -> None:
    prom: Prom = stack["prom"]
    api = httpx.Client(base_url=stack["api"], timeout=10)
    wait_until_sync(lambda: _answers(stack["api"] + "/health"), 30, message="the API")
    wait_until_sync(lambda: _answers(stack["worker"] + "/metrics"), 30, message="the worker's /metrics")

    def submit(job_type: str, count: int) -> None:
        for _ in range(count):
            assert api.post("/api/v1/jobs", json={"type": job_type, "queue": queue}).status_code == 201

    submit("obs.ok", 7)  # registers the queue: its gauges exist from here on
    submit("obs.flaky", 1)
    wait_until_sync(
        lambda: prom.value(f'sum(tickr_jobs_succeeded_total{{queue="{queue}"}})') == 8,
        60,
        message="8 successes scraped",
    )
    wait_until_sync(
        lambda: prom.value(f'max(tickr_dead_depth{{queue="{queue}"}})') == 0, 30, message="an empty DLQ scraped"
    )
    submit("obs.doomed", 2)  # the DLQ grows: TickrDeadLetterQueueGrowing must fire

    expected = {
        "tickr_jobs_enqueued_total": 10,
        "tickr_jobs_dequeued_total": 11,  # 10 jobs + the flaky one's retry
        "tickr_jobs_succeeded_total": 8,
        "tickr_jobs_failed_total": 3,
        "tickr_jobs_retried_total": 1,
        "tickr_jobs_dead_total": 2,
        "tickr_acks_total": 8,
        "tickr_job_run_seconds_count": 11,
        "tickr_job_wait_seconds_count": 11,
    }
    for name, count in expected.items():
        wait_until_sync(
            lambda n=name, c=count: prom.value(f'sum({n}{{queue="{queue}"}})') == c, 30, message=f"{name} == {count}"
        )
    wait_until_sync(lambda: prom.value(f'max(tickr_dead_depth{{queue="{queue}"}})') == 2, 30, message="2 in the DLQ")
    assert prom.value(f'max(tickr_workers{{queue="{queue}"}})') == 1
    assert prom.value(f'sum(tickr_queue_depth{{queue="{queue}"}})') == 0

    def firing() -> bool:
        return any(
            a["labels"]["alertname"] == "TickrDeadLetterQueueGrowing"
            and a["labels"].get("queue") == queue
            and a["state"] == "firing"
            for a in prom.alerts()
        )

    wait_until_sync(firing, 30, message="TickrDeadLetterQueueGrowing firing")

    for expr in dashboard_exprs():
        promql = grafana_to_promql(expr, queue)
        names = set(re.findall(r"tickr_[a-z_]+", promql))
        if names & NOT_YET_EXPORTED:
            prom.query(promql)  # evaluates without error; no series until the history hook lands
            continue
        assert prom.query(promql), f"dashboard expression returned no series: {promql}"
    for rule in alert_rules():
        prom.query(rule["expr"])  # evaluates without error (an alert's condition is false when all is well)
        for name in set(re.findall(r"tickr_[a-z_]+", rule["expr"])) - NOT_YET_EXPORTED:
            series = name.removesuffix("_bucket")
            assert prom.query(f"group({name})") or prom.query(f"group({series}_bucket)"), (rule["alert"], name)
        assert {"summary", "description", "runbook"} <= set(rule["annotations"]), rule["alert"]

    promtool = _tool("promtool")
    for args in (
        ["check", "config", str(stack["config"])],
        ["check", "config", str(CONFIG)],
        ["check", "rules", str(ALERTS)],
    ):
        done = subprocess.run([promtool, *args], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
    for endpoint in (stack["api"], stack["worker"]):
        text = httpx.get(endpoint + "/metrics").text
        done = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False)
        assert done.returncode == 0, (endpoint, done.stdout + done.stderr)
