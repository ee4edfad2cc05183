"""The API through a real uvicorn socket: ``serve`` in the test's event loop, stop event, bind checks."""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.api.conftest import MAX_BODY
from tests.waiting import wait_until
from tickr.api import check_bind, serve
from tickr.api.server import bind_socket, is_loopback
from tickr.config import Settings
from tickr.core.errors import ConfigError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_until_up(base: str, timeout: float = 10.0) -> None:
    async with httpx.AsyncClient(base_url=base) as http:

        async def answers() -> bool:
            try:
                await http.get("/health")
            except httpx.TransportError:
                return False
            return True

        await wait_until(answers, timeout, message=f"the API at {base} to come up")


async def test_serve_until_stopped(api_settings: Settings, queue: str) -> None:
    settings = api_settings.model_copy(update={"api_port": free_port(), "api_host": "127.0.0.1"})
    base = f"http://127.0.0.1:{settings.api_port}"
    handler_before = signal.getsignal(signal.SIGINT)
    stop = asyncio.Event()
    server = asyncio.create_task(serve(settings, None, stop))
    await wait_until_up(base)
    assert signal.getsignal(signal.SIGINT) is handler_before  # uvicorn left the signals alone

    async with httpx.AsyncClient(base_url=base) as http:
        created = await http.post("/api/v1/jobs", json={"type": "noop", "queue": queue})
        assert created.status_code == 201
        assert (await http.get(f"/api/v1/jobs/{created.json()['id']}")).json()["status"] == "queued"
        assert (await http.get("/health")).json()["status"] == "ok"

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(MAX_BODY // 4096 + 2):
                yield b" " * 4096

        r = await http.post("/api/v1/jobs", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413
        r = await http.post("/api/v1/jobs", content=b" " * (MAX_BODY + 1), headers={"content-type": "application/json"})
        assert r.status_code == 413

    stop.set()
    await asyncio.wait_for(server, 15)
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(base_url=base) as http:
            await http.get("/health")


async def test_serve_raises_config_error_when_the_port_is_taken(api_settings: Settings) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = api_settings.model_copy(update={"api_port": port, "api_host": "127.0.0.1"})
        with pytest.raises(ConfigError, match="cannot listen"):
            await serve(settings, None, asyncio.Event())


def test_bind_socket_rejects_a_bad_host() -> None:
    with pytest.raises(ConfigError):
        bind_socket("no-such-host.invalid", 0)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("example.com", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_check_bind() -> None:
    check_bind("127.0.0.1", None, insecure=False)
    check_bind("0.0.0.0", "token", insecure=False)
    check_bind("0.0.0.0", None, insecure=True)
    with pytest.raises(ConfigError, match="TICKR_API_TOKEN"):
        check_bind("0.0.0.0", None, insecure=False)
    with pytest.raises(ConfigError):
        check_bind("192.168.1.10", "", insecure=False)
