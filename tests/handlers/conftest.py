"""Fixtures for the built-in handler tests: a real HTTP(S) server on 127.0.0.1 and a job-context runner."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tickr.config import Settings
from tickr.context import JobContext, reset_current_job, set_current_job
from tickr.handlers import http as http_handler
from tickr.handlers import ssrf

SIGNING_SECRET = "test-signing-secret"


def make_settings(**overrides: Any) -> Settings:
    """Settings that ignore the environment's TICKR_* variables and any .env file."""
    values: dict[str, Any] = {"http_allow_private": False, "http_allow_hosts": "", "smtp_url": None}
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


async def run_job(
    handler: Callable[[dict[str, Any]], Awaitable[Any]],
    payload: Any,
    *,
    settings: Settings | None = None,
    attempt: int = 1,
    job_id: str = "job-123",
    job_type: str = "test",
) -> Any:
    """Call ``handler(payload)`` with a JobContext bound, as the worker would."""
    ctx = JobContext(
        job_id=job_id,
        type=job_type,
        queue="default",
        attempt=attempt,
        max_retries=3,
        worker_id="worker-test",
        settings=settings or make_settings(),
    )
    token = set_current_job(ctx)
    try:
        return await handler(payload)
    finally:
        reset_current_job(token)


@dataclass
class Received:
    """One request as the test server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    signature_ok: bool | None = None


@dataclass
class TestServer:
    """A real threaded HTTP server on 127.0.0.1 that records what it receives."""

    __test__ = False

    port: int
    scheme: str = "http"
    requests: list[Received] = field(default_factory=list)
    connections: int = 0
    sni_names: list[str | None] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"


def _make_handler(state: TestServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _reply(self, code: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
            self.send_response(code)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            received = Received(self.command, self.path, headers, body)
            if "x-tickr-signature" in headers:
                received.signature_ok = http_handler.verify(
                    SIGNING_SECRET, headers.get("x-tickr-timestamp", ""), body, headers["x-tickr-signature"]
                )
            state.requests.append(received)
            parts = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            route = parts.path
            if route == "/ok":
                self._reply(200, b"hello", {"Content-Type": "text/plain; charset=utf-8"})
            elif route == "/echo":
                echo = {"method": self.command, "headers": headers, "body": body.decode("utf-8", "replace")}
                self._reply(200, json.dumps(echo).encode(), {"Content-Type": "application/json"})
            elif route == "/big":
                self._reply(200, ("é" * 600 + "x" * 5000).encode(), {"Content-Type": "text/plain; charset=utf-8"})
            elif route.startswith("/status/"):
                extra = {"Retry-After": query["retry_after"]} if "retry_after" in query else {}
                if "location" in query:
                    extra["Location"] = query["location"]
                self._reply(int(route.rsplit("/", 1)[1]), f"status body {route}".encode(), extra)
            elif route == "/slow":
                time.sleep(float(query.get("delay", "2")))  # the /slow route under test: a slow upstream
                self._reply(200, b"slow")
            else:
                self._reply(404, b"no such route")

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle  # noqa: N815

    return Handler


class _CountingServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    state: TestServer

    def verify_request(self, request: Any, client_address: Any) -> bool:
        self.state.connections += 1
        return True


def _serve(ssl_context: ssl.SSLContext | None = None) -> Iterator[TestServer]:
    state = TestServer(port=0, scheme="https" if ssl_context else "http")
    server = _CountingServer(("127.0.0.1", 0), _make_handler(state))
    server.state = state
    state.port = server.server_address[1]
    if ssl_context is not None:

        def record_sni(sock: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
            state.sni_names.append(name)

        ssl_context.sni_callback = record_sni
        server.socket = ssl_context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def http_server() -> Iterator[TestServer]:
    """A plain-HTTP test server on 127.0.0.1."""
    yield from _serve()


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for DNS name ``secure.example`` (only), made with the openssl CLI."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not available")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=secure.example",
            "-addext", "subjectAltName=DNS:secure.example",
            "-addext", "basicConstraints=critical,CA:TRUE",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def https_server(tls_cert: tuple[Path, Path]) -> Iterator[TestServer]:
    """An HTTPS test server on 127.0.0.1 presenting the ``secure.example`` certificate."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(tls_cert[0]), str(tls_cert[1]))
    yield from _serve(context)


@pytest.fixture
def closed_port() -> int:
    """A 127.0.0.1 port nothing listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass
class FakeResolver:
    """Stands in for ``ssrf.resolver``: a fixed name → IPs table that records each lookup."""

    table: dict[str, list[str]]
    calls: list[tuple[str, int]] = field(default_factory=list)

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return list(self.table[host])


@pytest.fixture
def fake_resolver(monkeypatch: pytest.MonkeyPatch) -> FakeResolver:
    """Replace the SSRF guard's resolver; tests fill ``table``."""
    resolver = FakeResolver({})
    monkeypatch.setattr(ssrf, "resolver", resolver)
    return resolver


@dataclass
class SendGuard:
    """Counts (and forbids) any attempt to send a request with httpx."""

    attempts: list[str] = field(default_factory=list)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> SendGuard:
    """Make any httpx send fail loudly, so a refused job provably never connected anywhere."""
    guard = SendGuard()

    async def forbidden_send(self: httpx.AsyncClient, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        guard.attempts.append(str(request.url))
        raise AssertionError(f"connection attempted to {request.url}")

    monkeypatch.setattr(httpx.AsyncClient, "send", forbidden_send)
    return guard
