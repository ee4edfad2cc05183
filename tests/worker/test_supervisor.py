"""The supervisor on trivial child commands: per-slot restart timers, failure counts, stops during a backoff."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.waiting import wait_until_sync
from tickr.worker.supervisor import Supervisor

ROOT = Path(__file__).resolve().parents[2]

DIES = "import sys, time; time.sleep(0.1); sys.exit(3)"  # child: lives 0.1 s, then fails
LIVES = "import time; time.sleep(60)"  # child: runs until stopped
# Lives a while, writes its time of death to argv[1] and exits 3; once that file exists, it lives on.
DIES_ONCE = """
import os, sys, time
if os.path.exists(sys.argv[1]):
    time.sleep(60)  # child: the restarted one runs until stopped
time.sleep(float(sys.argv[2]))  # child: lives argv[2] seconds before it dies
with open(sys.argv[1], "w") as out:
    out.write(repr(time.monotonic()))
sys.exit(3)
"""
# Records its pid in argv[1]; the first child started exits with 3 after 0.1 s, the others run argv[2].
FIRST_DIES = """
import os, sys, time
open(os.path.join(sys.argv[1], f"{os.getpid()}.pid"), "w").close()
try:
    os.close(os.open(os.path.join(sys.argv[1], "first"), os.O_CREAT | os.O_EXCL))
except FileExistsError:
    exec(sys.argv[2])
else:
    time.sleep(0.1)  # child: the first one lives 0.1 s, then fails
    sys.exit(3)
"""


def py(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", code, *args]


def supervise(sup: Supervisor, until: Callable[[], Any], timeout: float = 20.0) -> int:
    """Run ``sup`` in this (main) thread until ``until()`` holds, then stop it; returns its exit code."""
    met: list[bool] = []

    def watch() -> None:
        try:
            met.append(bool(wait_until_sync(until, timeout, message="the supervisor's state")))
        finally:
            sup.stop()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    code = sup.run()
    watcher.join(5)
    assert met, f"condition not met within {timeout}s"
    return code


class PerSlot(Supervisor):
    """A supervisor whose slots run different commands."""

    def __init__(self, commands: list[list[str]], **options: Any) -> None:
        super().__init__(commands[0], len(commands), **options)
        self.commands = commands

    def _spawn(self, slot: int) -> None:
        self.command = self.commands[slot]
        super()._spawn(slot)


def test_a_slot_restarts_on_its_own_timer_while_another_is_in_backoff(tmp_path: Path) -> None:
    died = tmp_path / "died"
    # Slot 0 keeps dying: its backoff grows 0.25, 0.5, 1, 2 s. Slot 1 dies once, during slot 0's 2 s backoff.
    sup = PerSlot([py(DIES), py(DIES_ONCE, str(died), "2.8")], restart_backoff=0.25)
    supervise(sup, lambda: len(sup.spawn_times[1]) == 2)
    delay = sup.spawn_times[1][1] - float(died.read_text())
    # Its own 0.25 s timer, not slot 0's 2 s backoff: the bound leaves a loaded machine a second of slack.
    assert 0.24 <= delay < 0.25 + 1.0, f"slot 1 came back {delay:.2f}s after it died (backoff 0.25s)"
    gaps = [b - a for a, b in zip(sup.spawn_times[0], sup.spawn_times[0][1:], strict=False)]
    assert len(gaps) >= 3
    for failures, gap in enumerate(gaps):
        assert gap >= 0.1 + 0.25 * 2**failures
    assert sup.restarts == len(gaps) + 1


@pytest.mark.parametrize(("stable", "grows"), [(0.2, False), (30.0, True)], ids=["reset", "no-reset"])
def test_failure_count_starts_over_once_a_child_stayed_up(stable: float, grows: bool) -> None:
    sup = Supervisor(
        py("import sys, time; time.sleep(0.3); sys.exit(3)"),  # child: lives 0.3 s, then fails
        1,
        restart_backoff=0.25,
        stable_seconds=stable,
    )
    supervise(sup, lambda: len(sup.spawn_times[0]) >= 4)
    gaps = [b - a for a, b in zip(sup.spawn_times[0], sup.spawn_times[0][1:], strict=False)]
    if grows:  # 0.3 s of life, then 0.25, 0.5, 1 s of backoff
        assert gaps[2] >= 0.3 + 1.0
    else:  # every death is the first after a stable run: always the base backoff
        assert max(gaps) < 0.3 + 0.25 + 0.4, gaps
        assert sup.failures == [1]


def test_sigterm_during_a_restart_backoff_stops_promptly_and_starts_no_child(tmp_path: Path) -> None:
    script = (
        "import logging, sys\n"
        "from tickr.worker.supervisor import Supervisor\n"
        "logging.basicConfig(level=logging.WARNING)\n"
        f"sys.exit(Supervisor([sys.executable, '-c', {FIRST_DIES!r}, sys.argv[1], {LIVES!r}], 2,"
        " restart_backoff=5.0).run())\n"
    )
    log = tmp_path / "stderr"
    with log.open("wb") as stderr:
        proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], cwd=ROOT, stderr=stderr)
    try:
        wait_until_sync(lambda: "restarting in 5.0s" in log.read_text(), timeout=20, message="a restart backoff")
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(10)
        took = time.monotonic() - sent
    finally:
        proc.kill()
        proc.wait()
    assert took < 0.5, f"the supervisor took {took:.2f}s to stop"
    assert code == 1  # the last process of one slot had exited with 3
    pids = [int(p.stem) for p in tmp_path.glob("*.pid")]
    assert len(pids) == 2, "a child was started after the stop request"
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # reaped by the supervisor: not even a zombie left


def test_burst_restarts_a_crash_but_not_a_drained_child(tmp_path: Path) -> None:
    sup = Supervisor(py(FIRST_DIES, str(tmp_path), "import sys; sys.exit(0)", "--burst"), 2, restart_backoff=0.05)
    assert sup.burst
    started = time.monotonic()
    assert sup.run() == 0
    assert time.monotonic() - started < 5
    assert sup.restarts == 1
    assert [len(times) for times in sup.spawn_times] in ([2, 1], [1, 2])
    assert sup.finished == [True, True]
