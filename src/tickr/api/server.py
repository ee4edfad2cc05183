"""Serving the HTTP API with uvicorn inside the caller's event loop, and the bind-safety check.

The host process (``tickr up``, ``tickr api``) owns the signals: uvicorn installs no handlers here
and stops when the caller sets its ``stop`` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import math
import socket
from collections.abc import Iterator

import uvicorn

from tickr.api.app import create_app
from tickr.app import App
from tickr.config import Settings
from tickr.core.errors import ConfigError
from tickr.lifecycle import Service

MAX_GRACE_SECONDS = 10.0
log = logging.getLogger("tickr.api")


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (``127.0.0.0/8``, ``::1``)."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: object | None, insecure: bool = False) -> None:
    """Refuse to serve beyond the loopback without a bearer token, unless ``insecure``."""
    if is_loopback(host) or token or insecure:
        return
    raise ConfigError(
        f"refusing to serve the API on {host!r} without a token: set TICKR_API_TOKEN, "
        "bind to 127.0.0.1, or pass --insecure"
    )


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the process hosting it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def install_signal_handlers(self) -> None:  # uvicorn < 0.29
        return None


def bind_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port``; ``ConfigError`` if that is impossible (in use, bad host)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc}") from None
    return sock


async def _run(server: uvicorn.Server, sock: socket.socket) -> None:
    try:
        await server.serve(sockets=[sock])
    except SystemExit as exc:  # uvicorn exits the process when startup fails; we must not
        raise ConfigError(f"the API server failed to start (exit code {exc.code})") from None


async def serve(settings: Settings, app: App | None, stop: asyncio.Event, sock: socket.socket | None = None) -> None:
    """Serve the API on ``settings.api_host:api_port`` until ``stop`` is set, then shut down gracefully.

    ``app`` is used (and left open) when given; otherwise the API makes and closes its own.
    Raises ``ConfigError`` when the address cannot be bound or the server does not start.
    Call ``check_bind`` first to refuse non-loopback addresses without a token.
    """
    sock = sock or bind_socket(settings.api_host, settings.api_port)
    config = uvicorn.Config(
        create_app(settings, app),
        host=settings.api_host,
        port=settings.api_port,
        log_level="warning",
        log_config=None,  # uvicorn's records go through tickr's handler (runtime/logging.py): one format
        access_log=settings.log_jobs,  # a line per request is a line per job: only with TICKR_LOG_JOBS
        lifespan="on",
        timeout_graceful_shutdown=math.ceil(min(settings.shutdown_grace_seconds, MAX_GRACE_SECONDS)),
    )
    if settings.log_jobs:
        logging.getLogger("uvicorn.access").setLevel(logging.INFO)
    server = _Server(config)
    serving = asyncio.create_task(_run(server, sock), name="tickr-api")
    stopping = asyncio.create_task(stop.wait(), name="tickr-api-stop")
    try:
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        server.should_exit = True
        done, _ = await asyncio.wait({serving}, timeout=MAX_GRACE_SECONDS + 5)
        if not done:
            server.force_exit = True
            serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving
        sock.close()
    if not server.started:
        raise ConfigError("the API server did not start")


class ApiService(Service):
    """The HTTP API as a service of ``tickr up``: ``stop()`` shuts uvicorn down gracefully."""

    name = "api"
    log = log
    graceful_stop = True
    stop_timeout = MAX_GRACE_SECONDS + 10

    def __init__(self, settings: Settings, app: App | None = None) -> None:
        super().__init__()
        self.settings = settings
        self.app = app
        self._stop = asyncio.Event()
        self._sock: socket.socket | None = None

    def request_stop(self) -> None:
        self._stop.set()

    async def start(self) -> None:
        """Bind the address now (``ConfigError`` to the caller when it cannot be), then serve in a task."""
        if self._sock is None:
            self._sock = bind_socket(self.settings.api_host, self.settings.api_port)
        await super().start()

    async def run(self) -> None:
        self.mark_started()
        await serve(self.settings, self.app, self._stop, self._sock)
