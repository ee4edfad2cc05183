"""``tickr up``: everything in one process for a laptop or a small server.

Embedded Valkey (when no ``TICKR_REDIS_URL``) with append-only persistence in the data directory, at one
address per data directory (``<data_dir>/valkey.sock``, or a TCP port kept in ``<data_dir>/valkey.port``
when the socket path is too long), written to ``<data_dir>/redis-url`` for every other command; a worker
(plus supervised worker processes with ``processes > 1``), the scheduler, the API, the history sink and the
lease reaper. Ctrl+C stops it all gracefully.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tickr.app import App
from tickr.config import Settings, discover_redis_url, embedded_url_file
from tickr.core.errors import ConfigError
from tickr.handlers import BUILTIN_HANDLERS
from tickr.history.database import SQLITE_FILE
from tickr.metrics.exposition import child_env, fresh_multiproc_dir
from tickr.procutil import die_with_parent
from tickr.runtime.embedded import EmbeddedValkey
from tickr.runtime.history import SinkProcess
from tickr.runtime.loader import load_app
from tickr.runtime.services import ProcessPlan, ProcessServices
from tickr.runtime.signals import on_stop_signals
from tickr.worker.worker import WorkerConfig

__all__ = ["EmbeddedServer", "WorkerPool", "banner", "discover_redis_url", "run_up", "start_embedded", "url_file"]

log = logging.getLogger("tickr.up")

SOCKET_FILE = "valkey.sock"
PORT_FILE = "valkey.port"
LOCK_FILE = "up.lock"
url_file = embedded_url_file  # where the embedded server's URL is kept (tickr.config: App finds it too)


class DataDirLock:
    """An exclusive ``flock`` on ``<data_dir>/up.lock``, held while a ``tickr up`` runs its server there.

    A second ``tickr up`` on the same directory would otherwise stop the first one's server as a left-over.
    The kernel drops the lock when the process dies, however it dies.
    """

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self, settings: Settings) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            running = discover_redis_url(settings) or "starting"
            raise ConfigError(
                f"another `tickr up` runs on {settings.data_dir} (Redis {running}): use it, stop it, "
                "or give this one another TICKR_DATA_DIR"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


@dataclass
class EmbeddedServer:
    """The embedded Valkey of one data directory, its lock and its URL file."""

    server: EmbeddedValkey
    lock: DataDirLock
    url_path: Path

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        """Forget the URL (nobody should find a stopped server), stop the server, release the directory."""
        try:
            self.url_path.unlink(missing_ok=True)
            self.server.stop()
        finally:
            self.lock.release()


def start_embedded(settings: Settings) -> tuple[Settings, EmbeddedServer | None]:
    """Start the bundled valkey-server unless a Redis URL is configured; returns settings carrying its URL.

    The address is the same on every start on one data directory, so workers started against an earlier
    ``tickr up`` reconnect by themselves after a restart.
    """
    if settings.redis_url:
        return settings, None
    data_dir = settings.data_dir.absolute()
    lock = DataDirLock(data_dir)
    lock.acquire(settings)
    try:
        server = EmbeddedValkey(
            data_dir / "valkey",
            socket_path=data_dir / SOCKET_FILE,
            port_file=data_dir / PORT_FILE,  # when the socket path is too long for AF_UNIX
            persistent=True,
        )
        server.start()
    except BaseException:
        lock.release()
        raise
    embedded = EmbeddedServer(server, lock, url_file(settings))
    embedded.url_path.write_text(server.url + "\n")
    log.info("embedded Valkey listening at %s (data in %s)", server.url, server.data_dir)
    return settings.model_copy(update={"redis_url": server.url}), embedded


def _redact(url: str) -> str:
    return re.sub(r"://[^@/]*@", "://***@", url)


def banner(
    settings: Settings, app: App, specs: Sequence[str], *, processes: int, serve_api: bool, embedded: bool
) -> str:
    """What ``tickr up`` prints once it runs: where the API, the docs, the dashboard, Redis and the history are,
    what it runs, how to stop."""
    base = f"http://{settings.api_host}:{settings.api_port}"
    api = f"{base}  (docs {base}/docs)" if serve_api else "off (TICKR_API_PORT=0)"
    where = f"embedded Valkey, data in {settings.data_dir}" if embedded else "TICKR_REDIS_URL"
    own = sorted(name for name in app.registry if name not in BUILTIN_HANDLERS)
    builtins = sorted(name for name in app.registry if name in BUILTIN_HANDLERS)
    tasks = [", ".join(own)] if own else []
    if builtins:
        tasks.append("built-ins: " + ", ".join(builtins))
    workers = f"{processes} process{'es' if processes > 1 else ''} x {settings.concurrency} concurrent jobs"
    history = "off (TICKR_HISTORY=false)"
    if settings.history:
        history = "TICKR_DATABASE_URL" if settings.database_url else f"SQLite {settings.data_dir / SQLITE_FILE}"
    lines = [
        "tickr up",
        f"  API      {api}",
        *([f"  UI       {base}/dashboard  (metrics {base}/metrics)"] if serve_api else []),
        f"  Redis    {_redact(settings.redis_url or '')}  ({where})",
        f"  history  {history}  (sink process at nice {settings.history_nice})"
        if settings.history
        else f"  history  {history}",
        f"  apps     {', '.join(specs) or 'built-ins only'}",
        f"  tasks    {'; '.join(tasks) or 'none'}",
        f"  workers  {workers} on {', '.join(settings.queue_list())}",
        "  stop     Ctrl+C (graceful: running jobs finish; a second Ctrl+C hands them back at once)",
    ]
    return "\n".join(lines)


class WorkerPool:
    """The extra worker processes of ``tickr up --processes P``: a ``Supervisor`` of P-1 ``tickr worker``
    processes, run as a child process in a session of its own (``Supervisor.run`` needs a main thread).
    Each stop signal ``tickr up`` gets is forwarded to it once, so one Ctrl+C is one graceful stop."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.stopped = False

    def start(self, settings: Settings, specs: Sequence[str], count: int, metrics_dir: Path | None = None) -> None:
        argv = ["worker", *specs, "--queues", settings.queues, "--concurrency", str(settings.concurrency)]
        argv.append("--no-scheduler")  # the scheduler runs in tickr up itself
        # With metrics on, the workers write multiprocess files that tickr up's /metrics merges.
        base = child_env(metrics_dir) if metrics_dir is not None else dict(os.environ)
        env = {**base, "TICKR_REDIS_URL": settings.redis_url or ""}
        command = [sys.executable, "-c", _SUPERVISOR_MAIN, str(count), *argv]
        self.proc = subprocess.Popen(command, env=env, start_new_session=True, preexec_fn=die_with_parent())
        log.info("supervising %d more worker processes (supervisor pid %d)", count, self.proc.pid)

    def stop(self) -> None:
        """Forward one stop (the first is graceful, a second one skips the grace period)."""
        self.stopped = True
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    async def wait(self) -> None:
        """Wait for the supervisor to end (stopping it first if nobody did)."""
        if self.proc is None:
            return
        if not self.stopped:
            self.stop()
        code = await asyncio.to_thread(self.proc.wait)
        if code:
            log.warning("the worker supervisor exited with code %s", code)


async def run_up(
    settings: Settings,
    app_specs: str | Sequence[str] | None,
    *,
    serve_api: bool = True,
    processes: int = 1,
    announce: Callable[[str], None] | None = None,
) -> None:
    """``tickr up``: the embedded server (unless a Redis URL is set), a worker (and ``processes - 1`` more in
    supervised processes), the scheduler and the API, until SIGINT/SIGTERM. ``announce`` gets the banner
    once everything runs. A signal during start-up still stops everything cleanly."""
    specs = [app_specs] if isinstance(app_specs, str) else list(app_specs or [])
    services: ProcessServices | None = None
    pool = WorkerPool()
    sink = SinkProcess()
    early_stops = 0  # signals that came before the services existed

    def on_signal() -> None:
        nonlocal early_stops
        if services is None:
            early_stops += 1
            return
        services.stop()
        pool.stop()
        sink.stop()

    with on_stop_signals(on_signal):
        settings, embedded = await asyncio.to_thread(start_embedded, settings)
        announcing: asyncio.Task[None] | None = None
        try:
            app = load_app(specs, settings)
            metrics_dir = fresh_multiproc_dir() if processes > 1 and settings.metrics else None
            api_settings = settings.model_copy(update={"metrics_dir": metrics_dir}) if metrics_dir else settings
            plan = ProcessPlan(scheduler=True, api=api_settings if serve_api else None)
            services = ProcessServices(app, WorkerConfig.from_settings(settings), plan)
            for _ in range(early_stops):
                services.stop()
            if settings.history and not early_stops:
                await sink.start(settings)
            if processes > 1 and not early_stops:
                pool.start(settings, specs, processes - 1, metrics_dir)
            if announce is not None:
                text = banner(settings, app, specs, processes=processes, serve_api=serve_api, embedded=bool(embedded))
                announcing = asyncio.create_task(_announce(services, text, announce))
            try:
                await services.run()
            finally:
                if announcing is not None:
                    announcing.cancel()
                await pool.wait()
                await sink.wait()
                await app.close()
                if metrics_dir is not None:
                    shutil.rmtree(metrics_dir, ignore_errors=True)
        finally:
            if embedded is not None:
                await asyncio.to_thread(embedded.stop)
            log.info("tickr stopped")


async def _announce(services: ProcessServices, text: str, announce: Callable[[str], None]) -> None:
    await services.worker.started.wait()
    announce(text)


# The supervisor process: it imports only what supervising needs (not the API, not this module).
_SUPERVISOR_MAIN = """
import sys
from tickr.config import Settings
from tickr.runtime.logging import configure_logging
from tickr.worker.supervisor import Supervisor, worker_command
settings = Settings()
configure_logging(settings.log_level, settings.log_format)
sys.exit(Supervisor(worker_command(sys.argv[2:]), int(sys.argv[1])).run())
"""
