"""What a benchmark runs against: a Redis (given, or a private embedded Valkey), worker processes, the machine."""

from __future__ import annotations

import contextlib
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from tickr.app import App
from tickr.runtime.embedded import EmbeddedValkey
from tickr.store.workers import WorkerInfo


def new_queue() -> str:
    """A queue name of one benchmark run: ``bench-<uuid>``, so runs never share keys."""
    return f"bench-{uuid.uuid4().hex[:12]}"


@contextlib.contextmanager
def redis_target(url: str | None) -> Iterator[str]:
    """``url`` as given, else a private, non-persistent embedded Valkey for the duration."""
    if url:
        yield url
        return
    with private_valkey() as server_url:
        yield server_url


@contextlib.contextmanager
def private_valkey() -> Iterator[str]:
    """A fresh embedded Valkey nobody else uses (no AOF, no RDB), stopped on exit."""
    with tempfile.TemporaryDirectory(prefix="tickr-bench-") as tmp:
        server = EmbeddedValkey(Path(tmp), persistent=False)
        server.start()
        try:
            yield server.url
        finally:
            server.stop()


@dataclass
class WorkerProcess:
    """One ``tickr worker`` command run as a real subprocess (``--processes`` makes it a supervisor)."""

    redis_url: str
    queue: str
    app_spec: str | None = None
    burst: bool = False
    processes: int = 1
    concurrency: int | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    ended_at: float = 0.0

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def exited(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "tickr", "worker"]
        if self.app_spec:
            cmd.append(self.app_spec)
        cmd += ["--queues", self.queue]
        if self.burst:
            cmd.append("--burst")
        if self.processes > 1:
            cmd += ["--processes", str(self.processes)]
        if self.concurrency:
            cmd += ["--concurrency", str(self.concurrency)]
        return cmd

    def start(self) -> WorkerProcess:
        env = {**os.environ, "TICKR_REDIS_URL": self.redis_url, "TICKR_LOG_LEVEL": "WARNING", **self.extra_env}
        self.started_at = time.perf_counter()
        self.proc = subprocess.Popen(self.command(), env=env, stdin=subprocess.DEVNULL)
        return self

    def wait(self, timeout: float) -> int:
        """Wait for the process to exit by itself (burst mode); kill it on timeout."""
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        self.ended_at = time.perf_counter()
        return code

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (graceful), then SIGKILL if it does not exit in time."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self.ended_at = time.perf_counter()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@contextlib.contextmanager
def running(workers: Sequence[WorkerProcess]) -> Iterator[Sequence[WorkerProcess]]:
    """Start ``workers`` and make sure none outlives the block."""
    try:
        for worker in workers:
            worker.start()
        yield workers
    finally:
        for worker in workers:
            worker.stop(timeout=10)


async def serving(app: App, queue: str) -> list[WorkerInfo]:
    """The live workers (heartbeat entry not expired) that serve ``queue``."""
    return [info for info in await app.store.workers.live() if queue in info.queues]


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


async def describe(app: App, url_given: bool) -> dict[str, Any]:
    """Versions, server and machine facts that a benchmark report must name."""
    server = await app.store.diagnostics.server()
    return {
        "tickr": _version("tickr"),
        "python": platform.python_version(),
        "redis_py": _version("redis"),
        "hiredis": _version("hiredis"),
        "uvloop": _version("uvloop"),
        "orjson": _version("orjson"),
        "server": server["server"],
        "server_allocator": server["allocator"],
        "server_source": "given --redis-url" if url_given else "private embedded Valkey",
        "cpu": _cpu_model(),
        "cores": os.cpu_count() or 0,
        "os": f"{platform.system()} {platform.release()}",
    }
