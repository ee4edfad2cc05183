"""Runs P worker processes, forwards stop signals to them, and restarts one that dies.

Stop order:

1. The first SIGINT/SIGTERM cancels every pending restart (no child is started after it) and is
   forwarded once to each live child. Each child runs in its own session, so a terminal's Ctrl+C
   reaches it only through this forwarding: one Ctrl+C is one graceful stop.
2. The supervisor waits for the children, which finish their in-flight jobs within their grace period.
3. A further signal is forwarded too (once): the children skip their grace period and hand jobs back.
4. ``run`` returns once every child has exited.

With a metrics port, the supervisor serves one ``/metrics`` merging its children: they run in prometheus
multiprocess mode in a directory made empty at start (and removed at the end), and serve no port of their own.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType

from tickr.metrics.exposition import MetricsEndpoint, child_env, child_exited, fresh_multiproc_dir
from tickr.procutil import die_with_parent

log = logging.getLogger("tickr.supervisor")

MAX_WAIT_SECONDS = 1.0  # a safety net only: signals and child exits wake the loop at once
MAX_BACKOFF_SECONDS = 30.0


class Supervisor:
    """Keeps ``processes`` copies of ``command`` running until told to stop.

    A child that exits on its own (crash, OOM kill) is restarted after a backoff that doubles each
    time it dies again (``restart_backoff`` up to 30 s). Each slot restarts on its own timer, and a
    slot's failure count starts over once its child stayed up ``stable_seconds``. With ``--burst``
    in the command a child that exits with 0 has drained the queues: it is not restarted, and
    ``run`` returns once every child is done. ``run`` must be called from the main thread.
    """

    def __init__(
        self,
        command: Sequence[str],
        processes: int,
        restart_backoff: float = 0.5,
        stable_seconds: float = 30.0,
        metrics: tuple[str, int] | None = None,
    ) -> None:
        self.command = list(command)
        self.metrics = metrics  # (host, port) of the merged /metrics endpoint, or None
        self.metrics_endpoint: MetricsEndpoint | None = None
        self._child_env: dict[str, str] | None = None
        self.processes = processes
        self.restart_backoff = restart_backoff
        self.stable_seconds = stable_seconds
        self.burst = "--burst" in self.command
        self.children: list[subprocess.Popen[bytes] | None] = [None] * processes
        self.restarts = 0
        self.spawn_times: list[list[float]] = [[] for _ in range(processes)]  # time.monotonic(), per slot
        self.restart_at: list[float | None] = [None] * processes  # when a slot's dead child comes back
        self.failures = [0] * processes  # consecutive quick deaths, per slot
        self.finished = [False] * processes  # burst: the slot's child drained the queues
        self.stopping = False
        self._signals: list[int] = []  # received, not yet forwarded
        self._wake_r = self._wake_w = -1

    def stop(self, signum: int = signal.SIGTERM) -> None:
        """Ask for a stop as if ``signum`` had arrived (safe from a signal handler or another thread)."""
        self._signals.append(signum)
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # not running yet, or the pipe is full: a wake is pending anyway
            os.write(self._wake_w, b"\0")

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGCHLD:
            self._wake()
        else:
            self.stop(signum)

    def _spawn(self, slot: int) -> None:
        # Its own session: a terminal's Ctrl+C reaches the child only through us. Told to follow the
        # supervisor: a supervisor killed with SIGKILL leaves no orphan workers behind.
        child = subprocess.Popen(
            self.command, start_new_session=True, preexec_fn=die_with_parent(), env=self._child_env
        )
        self.children[slot] = child
        self.spawn_times[slot].append(time.monotonic())
        log.info("worker process %d started (pid %d)", slot, child.pid)

    def _forward(self) -> None:
        while self._signals:
            signum = self._signals.pop(0)
            self.stopping = True
            self.restart_at = [None] * self.processes
            live = [child for child in self.children if child is not None and child.poll() is None]
            log.info("forwarding signal %d to %d worker processes", signum, len(live))
            for child in live:
                child.send_signal(signum)

    def _check(self, slot: int, now: float) -> None:
        """Restart the slot if its time has come, or note that its child exited."""
        due = self.restart_at[slot]
        if due is not None:
            if now >= due:
                self.restart_at[slot] = None
                self.restarts += 1
                self._spawn(slot)
            return
        child = self.children[slot]
        if child is None or self.finished[slot] or self.stopping or child.poll() is None:
            return
        if self.metrics_endpoint is not None and self.metrics_endpoint.multiproc_dir is not None:
            child_exited(self.metrics_endpoint.multiproc_dir, child.pid)
        if self.burst and child.returncode == 0:
            self.finished[slot] = True
            return
        if now - self.spawn_times[slot][-1] >= self.stable_seconds:
            self.failures[slot] = 0
        self.failures[slot] += 1
        delay = min(MAX_BACKOFF_SECONDS, self.restart_backoff * 2 ** min(self.failures[slot] - 1, 6))
        log.warning(
            "worker process %d (pid %d) exited with %s; restarting in %.1fs", slot, child.pid, child.returncode, delay
        )
        self.restart_at[slot] = now + delay

    def _running(self) -> bool:
        if any(child is not None and child.poll() is None for child in self.children):
            return True
        return not (self.stopping or all(self.finished))

    def _wait(self) -> None:
        """Sleep until a signal, a child's exit or the nearest restart, whichever comes first."""
        if self._signals:
            return
        now = time.monotonic()
        timeout = min([MAX_WAIT_SECONDS, *(due - now for due in self.restart_at if due is not None)])
        ready, _, _ = select.select([self._wake_r], [], [], max(0.0, timeout))
        if ready:
            with contextlib.suppress(BlockingIOError):
                os.read(self._wake_r, 4096)

    def run(self) -> int:
        """Supervise until a stop signal, then wait for the children.

        Returns 0 when the last process of every slot ended with 0 or by SIGINT/SIGTERM, else 1.
        """
        self._wake_r, self._wake_w = os.pipe()
        for fd in (self._wake_r, self._wake_w):
            os.set_blocking(fd, False)
        sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in sigs}
        previous_fd = signal.set_wakeup_fd(self._wake_w)  # wakes select() whichever thread gets a signal
        try:
            self._serve_metrics()
            for slot in range(self.processes):
                self._spawn(slot)
            while self._running():
                self._wait()
                self._forward()
                now = time.monotonic()
                for slot in range(self.processes):
                    self._check(slot, now)
            codes = [child.wait() for child in self.children if child is not None]
            return 0 if all(code in (0, -signal.SIGTERM, -signal.SIGINT) for code in codes) else 1
        finally:
            self._stop_metrics()
            signal.set_wakeup_fd(previous_fd)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._wake_r = self._wake_w = -1

    def _serve_metrics(self) -> None:
        if self.metrics is None:
            return
        directory = fresh_multiproc_dir()
        self._child_env = child_env(directory)
        self.metrics_endpoint = MetricsEndpoint(*self.metrics, multiproc_dir=directory)
        self.metrics_endpoint.start_sync()

    def _stop_metrics(self) -> None:
        endpoint, self.metrics_endpoint = self.metrics_endpoint, None
        if endpoint is not None:
            endpoint.stop_sync()
            if endpoint.multiproc_dir is not None:
                shutil.rmtree(endpoint.multiproc_dir, ignore_errors=True)


def worker_command(argv: Sequence[str]) -> list[str]:
    """The command line of one child worker process."""
    return [sys.executable, "-m", "tickr", *argv]
