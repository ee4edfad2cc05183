"""The wheel ships the dashboard's templates and assets (``pip install .`` alone, no Node, no CDN)."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = resources.files("tickr.dashboard")


def test_wheel_contains_templates_and_static_assets(tmp_path: Path) -> None:
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = tmp_path.glob("tickr-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    templates = {f"tickr/dashboard/templates/{t.name}" for t in PACKAGE.joinpath("templates").iterdir()}
    static = {f"tickr/dashboard/static/{a.name}" for a in PACKAGE.joinpath("static").iterdir()}
    assert "tickr/dashboard/templates/base.html" in templates
    assert {"tickr/dashboard/static/dashboard.css", "tickr/dashboard/static/dashboard.js"} <= static
    assert templates | static <= names


def test_no_page_loads_anything_from_another_origin() -> None:
    external = re.compile(r"""(src|href)=["']?(https?:)?//""")
    for template in PACKAGE.joinpath("templates").iterdir():
        assert not external.search(template.read_text()), template.name
    for asset in PACKAGE.joinpath("static").iterdir():
        assert "http://" not in asset.read_text() and "https://" not in asset.read_text(), asset.name
