"""Every module of the package imports on its own, in a fresh interpreter (no hidden import-order dependency)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import tickr

MODULES = sorted(m.name for m in pkgutil.walk_packages(tickr.__path__, "tickr.") if not m.name.endswith("__main__"))


def test_the_package_has_the_expected_modules() -> None:
    assert "tickr.store.store" in MODULES and "tickr.lifecycle" in MODULES and len(MODULES) > 50


def test_every_module_imports_alone_in_a_fresh_interpreter() -> None:
    # A fresh interpreter per module would spend ~1 s each importing the same third-party libraries; so one
    # child loads those (and no tickr module), then forks a clean copy per tickr module.
    script = """
import importlib, os, sys
for library in ("fastapi", "pydantic", "pydantic_settings", "redis.asyncio", "typer", "rich", "httpx", "uvicorn"):
    importlib.import_module(library)
assert not [m for m in sys.modules if m == "tickr" or m.startswith("tickr.")]
running, failed = {}, []
for name in sys.argv[1:]:
    if len(running) >= (os.cpu_count() or 2):
        pid, status = os.wait()
        if status:
            failed.append(running[pid])
        del running[pid]
    pid = os.fork()
    if pid == 0:
        try:
            importlib.import_module(name)
        except BaseException as exc:
            print(f"{name}: {type(exc).__name__}: {exc}", flush=True)
            os._exit(1)
        os._exit(0)
    running[pid] = name
for pid, name in running.items():
    if os.waitpid(pid, 0)[1]:
        failed.append(name)
sys.exit(1 if failed else 0)
"""
    result = subprocess.run([sys.executable, "-c", script, *MODULES], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
