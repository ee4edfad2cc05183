"""Runs P worker processes, forwards stop signals to them, and restarts one that dies."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType

from tickr.procutil import die_with_parent

log = logging.getLogger("tickr.supervisor")


class Supervisor:
    """Keeps ``processes`` copies of ``command`` running until told to stop.

    A child that exits on its own (crash, OOM kill) is restarted after a short backoff that
    grows when it keeps dying. SIGINT/SIGTERM are forwarded; a second one is forwarded too,
    which makes the children skip their grace period. With ``--burst`` in the command a child
    that exits with 0 has drained the queues: it is not restarted, and ``run`` returns once
    every child is done.
    """

    def __init__(self, command: Sequence[str], processes: int, restart_backoff: float = 0.5) -> None:
        self.command = list(command)
        self.processes = processes
        self.restart_backoff = restart_backoff
        self.children: list[subprocess.Popen[bytes] | None] = [None] * processes
        self.restarts = 0
        self.burst = "--burst" in self.command
        self._signals = 0

    def _spawn(self, slot: int) -> None:
        # Told to follow the supervisor: a supervisor killed with SIGKILL leaves no orphan workers behind.
        child = subprocess.Popen(self.command, preexec_fn=die_with_parent())
        self.children[slot] = child
        log.info("worker process %d started (pid %d)", slot, child.pid)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._signals += 1
        for child in self.children:
            if child is not None and child.poll() is None:
                child.send_signal(signum)

    def run(self) -> int:
        """Supervise until a stop signal, then wait for the children; returns an exit code."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for slot in range(self.processes):
                self._spawn(slot)
            failures = [0] * self.processes
            finished = [False] * self.processes
            while not self._signals and not all(finished):
                time.sleep(0.05 if self.burst else 0.2)
                for slot, child in enumerate(self.children):
                    if child is None or child.poll() is None or self._signals or finished[slot]:
                        continue
                    if self.burst and child.returncode == 0:
                        finished[slot] = True
                        continue
                    failures[slot] += 1
                    delay = min(30.0, self.restart_backoff * 2 ** min(failures[slot] - 1, 6))
                    log.warning(
                        "worker process %d (pid %d) exited with %s; restarting in %.1fs",
                        slot,
                        child.pid,
                        child.returncode,
                        delay,
                    )
                    time.sleep(delay)
                    self.restarts += 1
                    self._spawn(slot)
            codes = [child.wait() for child in self.children if child is not None]
            return 0 if all(code in (0, -signal.SIGTERM, -signal.SIGINT) for code in codes) else 1
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def worker_command(argv: Sequence[str]) -> list[str]:
    """The command line of one child worker process."""
    return [sys.executable, "-m", "tickr", *argv]
