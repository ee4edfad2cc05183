"""Real valkey-server processes started by tickr.runtime.embedded: lifecycle, endpoints, persistence, cluster."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.waiting import wait_until_sync
from tickr.runtime import embedded
from tickr.runtime.embedded import EmbeddedValkey, EmbeddedValkeyError, valkey_binary


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state != "Z"


def _wait_dead(pid: int, timeout: float = 5.0) -> bool:
    """True once ``pid`` is dead, False if it still lives after ``timeout``."""
    try:
        return wait_until_sync(lambda: not _alive(pid), timeout, message=f"process {pid} to die")
    except AssertionError:
        return False


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedValkey]:
    srv = EmbeddedValkey(tmp_path / "data")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def test_binary_is_bundled_and_executable() -> None:
    binary = valkey_binary()
    assert binary.name == "valkey-server"
    assert os.access(binary, os.X_OK)
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=True).stdout
    assert "v=8." in out


def test_start_ping_stop(tmp_path: Path) -> None:
    data = tmp_path / "missing" / "data"
    srv = EmbeddedValkey(data)
    assert srv.pid is None
    with pytest.raises(EmbeddedValkeyError):
        _ = srv.url
    srv.start()
    pid = srv.pid
    assert pid is not None
    assert srv.running
    assert srv.url == f"redis://127.0.0.1:{srv.port}/0"
    client = redis.Redis.from_url(srv.url)
    assert client.ping()
    assert client.config_get("bind")["bind"] == "127.0.0.1"
    assert client.config_get("hz")["hz"] == "100"
    assert client.config_get("daemonize")["daemonize"] == "no"
    assert (data / "valkey.pid").read_text().strip() == str(pid)
    client.close()
    srv.stop()
    assert srv.pid is None
    assert _wait_dead(pid, 0.5)
    assert not (data / "valkey.pid").exists()
    assert (data / "valkey.log").stat().st_size > 0


def test_free_ports_differ_and_explicit_port_is_used(tmp_path: Path) -> None:
    with EmbeddedValkey(tmp_path / "a") as a, EmbeddedValkey(tmp_path / "b") as b:
        assert a.port is not None
        assert b.port is not None
        assert a.port != b.port
        with a.client() as ca, b.client() as cb:
            ca.set("k", "a")
            assert cb.get("k") is None
    wanted = embedded._free_port()
    with EmbeddedValkey(tmp_path / "c", port=wanted) as c:
        assert c.port == wanted
        assert c.url == f"redis://127.0.0.1:{wanted}/0"
        with c.client() as cc:
            assert cc.ping()


def test_port_taken_before_bind_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        real = embedded._free_port
        picks = iter([taken])
        monkeypatch.setattr(embedded, "_free_port", lambda: next(picks, None) or real())
        with EmbeddedValkey(tmp_path / "d") as srv:
            assert srv.port not in (None, taken)
            with srv.client() as c:
                assert c.ping()


def test_explicit_port_in_use_fails_clearly(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        srv = EmbeddedValkey(tmp_path / "d", port=busy.getsockname()[1])
        with pytest.raises(EmbeddedValkeyError, match="Address already in use"):
            srv.start(timeout=5)
        assert srv.pid is None


def test_bad_argument_fails_fast_with_the_reason(tmp_path: Path) -> None:
    srv = EmbeddedValkey(tmp_path / "d", extra_args=["--no-such-option", "1"])
    started = time.monotonic()
    with pytest.raises(EmbeddedValkeyError, match="no-such-option"):
        srv.start()
    assert time.monotonic() - started < 5
    srv.stop()  # nothing to stop: fine


def test_unix_socket(tmp_path: Path) -> None:
    with EmbeddedValkey(tmp_path / "u", unix_socket=True) as srv:
        sock = tmp_path / "u" / "valkey.sock"
        assert srv.url == f"unix://{sock}?db=0"
        assert srv.socket_path == sock
        assert srv.port is None
        assert sock.exists()
        with srv.client() as c:
            assert c.ping()
            assert c.config_get("port")["port"] == "0"
            assert c.config_get("unixsocketperm")["unixsocketperm"] == "700"
    assert not sock.exists()


def test_unix_socket_path_too_long_falls_back_to_tcp(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    deep = tmp_path / ("x" * 60) / ("y" * 60)
    caplog.set_level(logging.WARNING, logger="tickr.embedded")
    with EmbeddedValkey(deep, unix_socket=True) as srv:
        assert srv.url.startswith("redis://127.0.0.1:")
        assert srv.socket_path is None
        with srv.client() as c:
            assert c.ping()
    assert any("AF_UNIX" in r.getMessage() for r in caplog.records)


def test_socket_path_of_choice_gives_one_url_across_restarts(tmp_path: Path) -> None:
    sock = tmp_path / "valkey.sock"  # beside the server's directory, as `tickr up` keeps it
    srv = EmbeddedValkey(tmp_path / "valkey", socket_path=sock, persistent=False)
    urls = []
    for _ in range(2):
        with srv:
            urls.append(srv.url)
            assert sock.exists()
            with srv.client() as c:
                assert c.ping()
        assert not sock.exists()
    assert urls == [f"unix://{sock}?db=0"] * 2


def test_too_long_socket_path_falls_back_to_a_port_kept_across_restarts(tmp_path: Path) -> None:
    deep = tmp_path / ("x" * 60) / ("y" * 60)
    port_file = deep / "valkey.port"
    srv = EmbeddedValkey(deep / "valkey", socket_path=deep / "valkey.sock", port_file=port_file, persistent=False)
    with srv:
        port = srv.port
        assert port is not None and port_file.read_text().strip() == str(port)
    with srv:
        assert srv.port == port  # the same address after a restart
    with socket.socket() as squatter:  # another program took the port meanwhile
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the port may be in TIME_WAIT
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        with srv:
            assert srv.port not in (None, port)
            with srv.client() as c:
                assert c.ping()
            assert port_file.read_text().strip() == str(srv.port)  # the new port is kept from now on


def test_persistent_data_survives_restart(tmp_path: Path) -> None:
    data = tmp_path / "p"
    srv = EmbeddedValkey(data)
    srv.start()
    with srv.client() as c:
        assert c.config_get("appendonly")["appendonly"] == "yes"
        assert c.config_get("appendfsync")["appendfsync"] == "everysec"
        assert c.config_get("save")["save"] == ""
        c.set("greeting", "hello")
        c.rpush("list", "a", "b")
    srv.stop()
    assert (data / "appendonlydir").is_dir()
    assert not (data / "dump.rdb").exists()
    srv.start()
    with srv.client() as c:
        assert c.get("greeting") == b"hello"
        assert c.lrange("list", 0, -1) == [b"a", b"b"]
    srv.stop()
    # A fresh instance on the same directory (another process, say) sees the data too.
    with EmbeddedValkey(data) as again, again.client() as c:
        assert c.get("greeting") == b"hello"


def test_persistent_data_survives_sigkill(tmp_path: Path) -> None:
    data = tmp_path / "p"
    srv = EmbeddedValkey(data)
    srv.start()
    with srv.client() as c:
        c.set("k", "v")
    # A SIGKILL keeps what the kernel has: wait until the AOF file holds the write (with appendfsync
    # everysec the server may postpone writing it while a background fsync runs).
    aof = data / "appendonlydir"
    written = b"$1\r\nk\r\n$1\r\nv\r\n"
    wait_until_sync(
        lambda: any(written in f.read_bytes() for f in aof.glob("*.incr.aof")), timeout=5, message="the AOF write"
    )
    pid = srv.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    assert _wait_dead(pid)
    # the kernel may report the pid dead a moment before waitpid can reap it
    wait_until_sync(lambda: not srv.running, timeout=5, message="the server to be reaped")
    srv.start()  # the dead process is noticed and the pidfile it left is ignored
    with srv.client() as c:
        assert c.get("k") == b"v"
    srv.stop()


def test_non_persistent_writes_nothing(tmp_path: Path) -> None:
    data = tmp_path / "np"
    srv = EmbeddedValkey(data, persistent=False)
    srv.start()
    with srv.client() as c:
        assert c.config_get("appendonly")["appendonly"] == "no"
        assert c.config_get("save")["save"] == ""
        c.set("k", "v")
    srv.stop()
    assert not (data / "appendonlydir").exists()
    assert not list(data.glob("*.rdb"))
    assert not list(data.glob("*.aof"))
    srv.start()
    with srv.client() as c:
        assert c.get("k") is None
    srv.stop()


def test_stop_is_idempotent(tmp_path: Path) -> None:
    srv = EmbeddedValkey(tmp_path / "i")
    srv.stop()
    srv.start()
    srv.start()  # already running: no second process
    pid = srv.pid
    srv.stop()
    srv.stop()
    assert srv.pid is None
    assert pid is not None
    assert not _alive(pid)
    with srv:
        assert srv.running
    with srv:  # and it can be restarted after that
        assert srv.running
    srv.stop()


def test_stale_pidfile_of_dead_process_is_ignored(tmp_path: Path) -> None:
    data = tmp_path / "s"
    data.mkdir()
    gone = subprocess.Popen(["true"])
    gone.wait()
    (data / "valkey.pid").write_text(f"{gone.pid}\n")
    with EmbeddedValkey(data) as srv:
        assert (data / "valkey.pid").read_text().strip() == str(srv.pid)


def test_stale_pidfile_of_unrelated_process_leaves_it_alone(tmp_path: Path) -> None:
    data = tmp_path / "s"
    data.mkdir()
    other = subprocess.Popen(["sleep", "30"])
    try:
        (data / "valkey.pid").write_text(f"{other.pid}\n")
        with EmbeddedValkey(data) as srv:
            assert srv.running
            assert other.poll() is None
    finally:
        other.kill()
        other.wait()
    (data / "valkey.pid").write_text("garbage")
    with EmbeddedValkey(data) as srv:
        assert srv.running


def test_leftover_server_on_same_dir_is_stopped(tmp_path: Path) -> None:
    data = tmp_path / "s"
    data.mkdir()
    port = embedded._free_port()
    argv = [
        str(valkey_binary()),
        "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data),
        "--pidfile", str(data / "valkey.pid"), "--logfile", str(data / "orphan.log"),
        "--appendonly", "yes", "--save", "",
    ]  # fmt: skip
    orphan = subprocess.Popen(argv)
    try:
        client = redis.Redis(port=port)

        def written() -> bool:
            try:
                return bool(client.set("from-orphan", "1"))
            except redis.ConnectionError:
                return False

        wait_until_sync(written, timeout=5, message="the orphan server to answer")
        client.close()
        with EmbeddedValkey(data) as srv:
            assert orphan.wait(timeout=1) is not None
            assert srv.pid != orphan.pid
            with srv.client() as c:
                assert c.get("from-orphan") == b"1"  # it shut down cleanly and its AOF was picked up
    finally:
        if orphan.poll() is None:
            orphan.kill()
        orphan.wait()


def test_cluster_mode_rejects_cross_slot_scripts(tmp_path: Path) -> None:
    with EmbeddedValkey(tmp_path / "c", cluster=True) as srv, srv.client(decode_responses=True) as c:
        info = c.execute_command("CLUSTER", "INFO")
        text = info if isinstance(info, str) else "\n".join(f"{k}:{v}" for k, v in info.items())
        assert "cluster_state:ok" in text
        assert "cluster_slots_assigned:16384" in text
        script = '#!lua\nredis.call("SET", KEYS[1], "1")\nredis.call("SET", KEYS[2], "2")\nreturn 1'
        with pytest.raises(redis.exceptions.ClusterCrossSlotError):  # the server said CROSSSLOT
            c.eval(script, 2, "a", "b")
        assert c.eval(script, 2, "{job}a", "{job}b") == 1
        assert c.mget("{job}a", "{job}b") == ["1", "2"]
        # A key the script did not declare, in another slot, is refused too.
        sneaky = '#!lua\nredis.call("SET", KEYS[1], "1")\nreturn redis.call("GET", "elsewhere")'
        with pytest.raises(redis.ResponseError, match="do not hash to the same slot"):
            c.eval(sneaky, 1, "{job}c")


def test_cluster_mode_restart_keeps_slots(tmp_path: Path) -> None:
    data = tmp_path / "c"
    with EmbeddedValkey(data, cluster=True) as srv, srv.client() as c:
        c.set("{t}k", "v")
    assert (data / "nodes.conf").exists()
    with EmbeddedValkey(data, cluster=True) as srv, srv.client() as c:
        assert c.get("{t}k") == b"v"


def test_start_from_short_lived_thread_survives_the_thread(tmp_path: Path) -> None:
    srv = EmbeddedValkey(tmp_path / "t")
    worker = threading.Thread(target=srv.start)
    worker.start()
    worker.join()
    try:
        # Gone for the kernel too: a PR_SET_PDEATHSIG tied to that thread has been sent by now ...
        task = Path(f"/proc/self/task/{worker.native_id}")
        wait_until_sync(lambda: not task.exists(), timeout=5, message="the thread to exit")
        assert srv.running
        with srv.client() as c:
            assert c.ping()  # ... and handled before this reply: its handler runs first
        assert "Received SIGTERM" not in (tmp_path / "t" / "valkey.log").read_text()
    finally:
        srv.stop()


_CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from tickr.runtime.embedded import EmbeddedValkey
    srv = EmbeddedValkey(Path(sys.argv[1]))
    srv.start()
    print(srv.pid, flush=True)
    if sys.argv[2] == "hang":
        time.sleep(60)  # child: a parent that lives on until it is SIGKILLed
    """
)


@pytest.mark.parametrize(
    "how",
    ["exit", pytest.param("sigkill", marks=pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG"))],
)
def test_server_does_not_outlive_its_parent(tmp_path: Path, how: str) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(tmp_path / "x"), "hang" if how == "sigkill" else "exit"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        pid = int(child.stdout.readline())
        if how == "sigkill":
            child.kill()
        child.wait(timeout=10)
        assert _wait_dead(pid), f"valkey-server {pid} outlived its parent ({how})"
        log = (tmp_path / "x" / "valkey.log").read_text()
        # A clean exit runs the atexit hook (SHUTDOWN); a SIGKILLed parent leaves it to PR_SET_PDEATHSIG.
        assert ("User requested shutdown" if how == "exit" else "Received SIGTERM") in log
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_server_ignores_the_terminals_ctrl_c(tmp_path: Path) -> None:
    """The server runs in a session of its own: a SIGINT to tickr's process group does not reach it."""
    srv = EmbeddedValkey(tmp_path / "s", persistent=False)
    srv.start()
    try:
        pid = srv.pid
        assert pid is not None
        assert os.getsid(pid) != os.getsid(0)
        assert os.getpgid(pid) != os.getpgid(0)
    finally:
        srv.stop()
