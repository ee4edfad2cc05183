"""deploy/: the checked-in dashboard is what build_dashboard.py makes; every alert has a runbook section."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_dashboard_json_is_up_to_date() -> None:
    builder = runpy.run_path(str(ROOT / "deploy" / "grafana" / "build_dashboard.py"))
    assert (ROOT / "deploy" / "grafana" / "dashboards" / "tickr.json").read_text() == builder["render"](), (
        "run: python deploy/grafana/build_dashboard.py"
    )


def test_every_runbook_points_at_a_section_of_operations_md() -> None:
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in (ROOT / "docs" / "operations.md").read_text().splitlines()
        if line.startswith("#")
    }
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())["groups"][0]["rules"]
    for rule in rules:
        page, _, anchor = rule["annotations"]["runbook"].partition("#")
        assert page == "docs/operations.md" and anchor in headings, rule["alert"]
