"""Builds deploy/grafana/dashboards/tickr.json, tickr's Grafana dashboard (run it after changing a panel).

Plain Python, no library: the JSON is small and checked in; tests/observability checks it is up to date and
runs every expression against a real Prometheus. Usage: python deploy/grafana/build_dashboard.py
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).parent / "dashboards" / "tickr.json"
Q = 'queue=~"$queue"'
RI = "$__rate_interval"
DS = {"type": "prometheus", "uid": "${datasource}"}

# (title, unit, [(legend, expr), ...]); each row of the grid holds two panels.
PANELS: list[tuple[str, str, list[tuple[str, str]]]] = [
    (
        "Throughput",
        "ops",
        [
            ("enqueued {{queue}}", f"sum by (queue) (rate(tickr_jobs_enqueued_total{{{Q}}}[{RI}]))"),
            ("started {{queue}}", f"sum by (queue) (rate(tickr_jobs_dequeued_total{{{Q}}}[{RI}]))"),
        ],
    ),
    (
        "Success vs failure",
        "ops",
        [
            ("succeeded {{queue}}", f"sum by (queue) (rate(tickr_jobs_succeeded_total{{{Q}}}[{RI}]))"),
            ("failed {{queue}}", f"sum by (queue) (rate(tickr_jobs_failed_total{{{Q}}}[{RI}]))"),
        ],
    ),
    (
        "Depth by state",
        "short",
        [
            ("ready {{queue}}", f"sum by (queue) (max by (queue, priority) (tickr_queue_depth{{{Q}}}))"),
            ("scheduled {{queue}}", f"max by (queue) (tickr_scheduled_depth{{{Q}}})"),
            ("in flight {{queue}}", f"max by (queue) (tickr_inflight{{{Q}}})"),
            ("dead {{queue}}", f"max by (queue) (tickr_dead_depth{{{Q}}})"),
        ],
    ),
    (
        "Ready by priority",
        "short",
        [("{{priority}}", f"sum by (priority) (max by (queue, priority) (tickr_queue_depth{{{Q}}}))")],
    ),
    (
        "Wait (due to start) percentiles",
        "s",
        [
            (
                f"p{p}",
                f"histogram_quantile(0.{p}, sum by (le) (rate(tickr_job_wait_seconds_bucket{{{Q}}}[{RI}])))",
            )
            for p in (50, 95, 99)
        ],
    ),
    (
        "Run time percentiles",
        "s",
        [
            (
                f"p{p}",
                f"histogram_quantile(0.{p}, sum by (le) (rate(tickr_job_run_seconds_bucket{{{Q}}}[{RI}])))",
            )
            for p in (50, 95, 99)
        ],
    ),
    (
        "Retries and dead-letter queue",
        "short",
        [
            ("retried/s {{queue}}", f"sum by (queue) (rate(tickr_jobs_retried_total{{{Q}}}[{RI}]))"),
            ("dead/s {{queue}}", f"sum by (queue) (rate(tickr_jobs_dead_total{{{Q}}}[{RI}]))"),
            ("in DLQ {{queue}}", f"max by (queue) (tickr_dead_depth{{{Q}}})"),
        ],
    ),
    (
        "Oldest waiting job",
        "s",
        [("{{queue}}", f"max by (queue) (tickr_oldest_waiting_seconds{{{Q}}})")],
    ),
    ("Workers", "short", [("{{queue}}", f"max by (queue) (tickr_workers{{{Q}}})")]),
    ("In flight", "short", [("{{queue}}", f"max by (queue) (tickr_inflight{{{Q}}})")]),
    (
        "Stale acks and reaped leases",
        "short",
        [
            ("stale acks {{queue}}", f"sum by (queue) (increase(tickr_stale_acks_total{{{Q}}}[{RI}]))"),
            ("reaped {{queue}}", f"sum by (queue) (increase(tickr_jobs_reaped_total{{{Q}}}[{RI}]))"),
        ],
    ),
    ("History lag", "s", [("lag", "max(tickr_history_lag_seconds)")]),
]


def panel(index: int, title: str, unit: str, targets: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "id": index + 1,
        "type": "timeseries",
        "title": title,
        "datasource": DS,
        "gridPos": {"h": 8, "w": 12, "x": 12 * (index % 2), "y": 8 * (index // 2)},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DS, "expr": expr, "legendFormat": legend}
            for i, (legend, expr) in enumerate(targets)
        ],
    }


def dashboard() -> dict[str, Any]:
    return {
        "uid": "tickr",
        "title": "tickr",
        "tags": ["tickr"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {
            "list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus", "current": {}},
                {
                    "name": "queue",
                    "type": "query",
                    "datasource": DS,
                    "query": {"query": "label_values(tickr_queue_depth, queue)", "refId": "queue"},
                    "definition": "label_values(tickr_queue_depth, queue)",
                    "includeAll": True,
                    "multi": True,
                    "allValue": ".*",
                    "refresh": 2,
                    "current": {"text": "All", "value": "$__all"},
                },
            ]
        },
        "panels": [panel(i, *p) for i, p in enumerate(PANELS)],
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


if __name__ == "__main__":
    OUT.write_text(render())
    print(f"wrote {OUT}")
