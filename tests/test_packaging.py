"""The wheel a user installs with ``pip install .`` holds the Lua scripts and the typing marker."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import tickr
from tickr.store.scripts import SCRIPT_NAMES

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_contains_lua_scripts_and_py_typed(tmp_path: Path) -> None:
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


def test_public_api_is_exported() -> None:
    for name in tickr.__all__:
        assert getattr(tickr, name) is not None, name
    assert {"App", "Retry", "Permanent", "current_job", "JobState", "Priority"} <= set(tickr.__all__)
