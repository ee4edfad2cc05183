"""Every URL form ``connect`` accepts gets a lean script lane that really speaks it, on private servers:
host/port, a database number, a password, an ACL user, a unix socket, TLS with a self-signed CA; a wrong
password fails at once with a clear error; RESP3 gets no lane.

Servers: the embedded ``valkey-server`` (plain TCP + unix socket; ``--requirepass`` + an ACL user) and, for
TLS, the first binary built with TLS (Debian's ``redis-server`` is; the embedded Valkey is not). Without
one the TLS tests skip, except under ``CI=true`` where they fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry

from tickr.runtime.embedded import EmbeddedValkey, valkey_binary
from tickr.store.connection import ScriptLane, connect

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
PASSWORD = "pw-lane"
ACL_USER, ACL_PASSWORD = "lane-user", "s3cret-lane"
SCRIPT = "redis.call('SET', KEYS[1], ARGV[1]) return {KEYS[1], ARGV[1]}"
PUSH = "return redis.call('RPUSH', KEYS[1], ARGV[1])"


# -- servers -----------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A server process of these tests: ``ready`` must answer before ``start`` returns."""

    args: list[str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self, ready: redis.Redis, timeout: float = 10.0) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        try:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"exited with code {self.proc.returncode}: {self._tail()}")
                with contextlib.suppress(redis.RedisError):
                    if ready.ping():
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no answer within {timeout}s: {self._tail()}")
                time.sleep(0.02)  # poll interval while the server starts (its exit is checked each turn)
        except BaseException:
            self.stop()
            raise
        finally:
            ready.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def _tail(self) -> str:
        return " | ".join(self.log.read_text(errors="replace").splitlines()[-4:])


def _base_args(binary: str | Path, port: int, workdir: Path) -> list[str]:
    """A private, diskless server on the loopback (``port`` 0: no plain TCP port)."""
    return [
        str(binary),
        *("--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir)),
        *("--save", "", "--appendonly", "no"),
    ]


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """An embedded Valkey with no password on TCP and on a unix socket: ``(redis://host:port, socket path)``."""
    workdir = tmp_path_factory.mktemp("plain")
    sock = workdir / "s.sock"
    server = EmbeddedValkey(
        workdir, persistent=False, extra_args=["--unixsocket", str(sock), "--unixsocketperm", "700"]
    )
    server.start()
    yield f"redis://127.0.0.1:{server.port}", sock
    server.stop()


@pytest.fixture(scope="module")
def protected(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Valkey started with ``--requirepass`` and an ACL user: ``redis://host:port`` (no credentials)."""
    workdir = tmp_path_factory.mktemp("protected")
    port = _free_port()
    server = Server([*_base_args(valkey_binary(), port, workdir), "--requirepass", PASSWORD], workdir / "log")
    server.start(redis.Redis(port=port, password=PASSWORD, socket_timeout=1, retry=Retry(NoBackoff(), 0)))
    with redis.Redis(port=port, password=PASSWORD) as admin:
        admin.acl_setuser(ACL_USER, enabled=True, passwords=[f"+{ACL_PASSWORD}"], keys=["*"], commands=["+@all"])
    yield f"redis://127.0.0.1:{port}"
    server.stop()


def _make_certificates(workdir: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate it signed, for 127.0.0.1 and localhost: ``(ca.pem, server.pem, key)``."""
    ca, ca_key = workdir / "ca.pem", workdir / "ca.key"
    cert, key, csr = workdir / "server.pem", workdir / "server.key", workdir / "server.csr"
    ext = workdir / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    sign = ["-CA", ca, "-CAkey", ca_key, "-CAcreateserial"]
    commands = [
        ["openssl", "req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=tickr test CA"],
        ["openssl", "req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"],
        ["openssl", "x509", "-req", "-in", csr, *sign, "-out", cert, "-days", "2", "-extfile", ext],
    ]
    for command in commands:
        subprocess.run([str(c) for c in command], check=True, capture_output=True, timeout=20)
    return ca, cert, key


def _tls_candidates() -> list[str]:
    found = [shutil.which("redis-server"), "/usr/bin/redis-server", shutil.which("valkey-server")]
    with contextlib.suppress(Exception):
        found.append(str(valkey_binary()))
    return list(dict.fromkeys(b for b in found if b and os.access(b, os.X_OK)))


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A server on a TLS port only: ``(rediss://host:port, ca.pem)``; skips (fails in CI) without one."""
    workdir = tmp_path_factory.mktemp("tls")
    if shutil.which("openssl") is None:
        _unavailable("no openssl to make a certificate")
    ca, cert, key = _make_certificates(workdir)
    tried: list[str] = []
    for binary in _tls_candidates():
        port = _free_port()
        args = [*_base_args(binary, 0, workdir), "--tls-port", str(port), "--tls-auth-clients", "no"]
        args += ["--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca)]
        server = Server(args, workdir / f"{Path(binary).name}-{port}.log")
        probe = redis.Redis(port=port, ssl=True, ssl_ca_certs=str(ca), socket_timeout=1, retry=Retry(NoBackoff(), 0))
        try:
            server.start(probe)
        except RuntimeError as exc:
            tried.append(f"{binary}: {exc}")
            continue
        yield f"rediss://127.0.0.1:{port}", ca
        server.stop()
        return
    _unavailable(f"no server binary with TLS support ({'; '.join(tried) or 'none found'})")


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"TLS test server unavailable in CI: {reason}")
    pytest.skip(f"TLS test server unavailable: {reason}")


# -- the check every URL form goes through -----------------------------------------------------------


@contextlib.asynccontextmanager
async def _lane_of(url: str, **options: Any) -> AsyncIterator[ScriptLane]:
    client = connect(url, **options)
    try:
        lane = ScriptLane.for_client(client)
        assert lane is not None, f"no lean lane for {url}"
        yield lane
    finally:
        await client.aclose()


async def _check_lane(url: str, check: redis.Redis, **options: Any) -> dict[str, str]:
    """EVALSHA and a streamed batch through the lane of ``connect(url)``; ``check`` (an independent client on
    the same server and database) sees their writes. Returns the lane connection's ``CLIENT INFO``."""
    key = f"tickr:{{urls}}:{uuid.uuid4().hex}"
    async with _lane_of(url, **options) as lane:
        sha = await lane.script_load(SCRIPT)
        assert await lane.evalsha(sha, 1, key, "here") == [key, "here"]
        push_sha = await lane.script_load(PUSH)

        async def batch() -> AsyncIterator[tuple[str, str, int, list[Any]]]:
            for i in range(40):
                yield (PUSH, push_sha, 1, [f"{key}:list", str(i)])

        assert await lane.stream(batch()) == list(range(1, 41))
        assert check.get(key) == b"here"
        assert check.lrange(f"{key}:list", 0, -1) == [str(i).encode() for i in range(40)]
        check.delete(key, f"{key}:list")
        info = await lane.call("CLIENT", "INFO")
        return dict(field.split("=", 1) for field in info.split() if "=" in field)


# -- the URL forms -----------------------------------------------------------------------------------


async def test_host_and_port(plain: tuple[str, Path]) -> None:
    url, _ = plain
    with redis.Redis.from_url(f"{url}/0") as check:
        info = await _check_lane(f"{url}/0", check)
    assert info["db"] == "0" and info["user"] == "default"


async def test_database_number(plain: tuple[str, Path]) -> None:
    url, _ = plain
    with redis.Redis.from_url(f"{url}/3") as check, redis.Redis.from_url(f"{url}/0") as db0:
        before = db0.dbsize()
        info = await _check_lane(f"{url}/3", check, client_name="tickr-urls")
        assert db0.dbsize() == before  # nothing landed in db 0
    assert info["db"] == "3" and info["name"] == "tickr-urls"


async def test_password_only(protected: str) -> None:
    with redis.Redis.from_url(f"redis://:{PASSWORD}@{protected.removeprefix('redis://')}/1") as check:
        info = await _check_lane(f"redis://:{PASSWORD}@{protected.removeprefix('redis://')}/1", check)
    assert info["db"] == "1" and info["user"] == "default"


async def test_username_and_password(protected: str) -> None:
    hostport = protected.removeprefix("redis://")
    url = f"redis://{ACL_USER}:{ACL_PASSWORD}@{hostport}/0"
    with redis.Redis.from_url(url) as check:
        info = await _check_lane(url, check)
    assert info["user"] == ACL_USER


async def test_unix_socket(plain: tuple[str, Path]) -> None:
    _, sock = plain
    url = f"unix://{sock}?db=2"
    async with _lane_of(url) as lane:
        assert lane.endpoint.path == str(sock) and lane.endpoint.db == 2
    with redis.Redis(unix_socket_path=str(sock), db=2) as check:
        info = await _check_lane(url, check)
    assert info["db"] == "2" and info["addr"].startswith(str(sock))


async def test_tls_with_a_self_signed_ca(tls: tuple[str, Path]) -> None:
    url, ca = tls
    full = f"{url}/0?ssl_cert_reqs=required&ssl_ca_certs={ca}"
    async with _lane_of(full) as lane:
        assert lane.endpoint.tls is not None and lane.endpoint.tls.check_hostname  # verified, as redis-py does
    with redis.Redis.from_url(full) as check:
        await _check_lane(full, check)


async def test_tls_with_an_unknown_ca_fails_clearly(tls: tuple[str, Path]) -> None:
    url, _ = tls
    async with _lane_of(f"{url}/0?ssl_cert_reqs=required") as lane:  # the system's CAs: ours is not among them
        started = time.monotonic()
        with pytest.raises(RedisConnectionError, match="certificate verify failed"):
            await lane.call("PING")
        assert time.monotonic() - started < 3


@pytest.mark.parametrize("userinfo", [":wrong", f"{ACL_USER}:wrong", "nobody:wrong"])
async def test_a_wrong_password_fails_at_once(protected: str, userinfo: str) -> None:
    url = f"redis://{userinfo}@{protected.removeprefix('redis://')}/0"
    async with _lane_of(url) as lane:
        started = time.monotonic()
        with pytest.raises(AuthenticationError, match=r"(?i)invalid|wrongpass"):
            await lane.call("PING")
        with pytest.raises(AuthenticationError):  # again: no connection was kept, nothing hangs
            await lane.evalsha("0" * 40, 0)
        many = await asyncio.gather(*(lane.call("PING") for _ in range(3 * lane.size)), return_exceptions=True)
        assert all(isinstance(e, AuthenticationError) for e in many)  # every waiting call too, none left waiting
        assert time.monotonic() - started < 3
        assert not lane._conns and not lane._open and not lane._waiting and lane._opening == 0


async def test_no_password_on_a_protected_server_fails_at_once(protected: str) -> None:
    async with _lane_of(f"{protected}/0") as lane:
        with pytest.raises(AuthenticationError):  # NOAUTH on the first command
            await lane.call("PING")


async def test_resp3_gets_no_lane(plain: tuple[str, Path]) -> None:
    url, _ = plain
    client = connect(f"{url}/0?protocol=3")
    try:
        assert ScriptLane.for_client(client) is None
        assert await client.ping()  # the client itself works: the store runs its scripts on it
    finally:
        await client.aclose()
