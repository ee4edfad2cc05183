"""The wheel a user installs with ``pip install .`` holds the Lua scripts, the migrations, the dashboard's
templates and assets, and the typing marker (one build checks them all)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from importlib import resources
from pathlib import Path

import tickr
from tickr.store.scripts import SCRIPT_NAMES

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_contains_scripts_migrations_dashboard_assets_and_py_typed(tmp_path: Path) -> None:
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = tmp_path.glob("tickr-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"tickr/store/lua/{name}.lua" for name in SCRIPT_NAMES} <= names
    assert "tickr/store/lua/include/common.lua" in names
    migrations = "tickr/history/migrations/"
    assert {migrations + "env.py", migrations + "script.py.mako", migrations + "versions/0001_initial.py"} <= names
    assert "tickr/py.typed" in names
    dashboard = resources.files("tickr.dashboard")
    templates = {f"tickr/dashboard/templates/{t.name}" for t in dashboard.joinpath("templates").iterdir()}
    static = {f"tickr/dashboard/static/{a.name}" for a in dashboard.joinpath("static").iterdir()}
    assert "tickr/dashboard/templates/base.html" in templates
    assert {"tickr/dashboard/static/dashboard.css", "tickr/dashboard/static/dashboard.js"} <= static
    assert templates | static <= names, "the dashboard's templates and assets ship (pip install . alone, no Node)"


def test_public_api_is_exported() -> None:
    for name in tickr.__all__:
        assert getattr(tickr, name) is not None, name
    assert {"App", "Retry", "Permanent", "current_job", "JobState", "Priority"} <= set(tickr.__all__)
