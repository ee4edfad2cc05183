"""Fixtures of the chaos suite: processes cleaned up on any outcome, a private Redis, the execution log."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.chaos.harness import FIGURES, ExecLog, Procs, RedisServer
from tickr import App, Settings


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    directory = tmp_path / "procs"
    directory.mkdir()
    started = Procs(directory)
    yield started
    started.cleanup()


@pytest.fixture
def exec_log(tmp_path: Path) -> ExecLog:
    directory = tmp_path / "runs"
    directory.mkdir()
    return ExecLog(directory)


@pytest.fixture
def private_redis(procs: Procs, tmp_path: Path) -> RedisServer:
    """A redis-server of this test only (append-only, fsync always), started; killed by ``procs``."""
    server = RedisServer(procs, tmp_path / "redis", aof=True)
    server.start()
    return server


@pytest.fixture
async def private_app(private_redis: RedisServer, tmp_path: Path) -> AsyncIterator[App]:
    tickr_app = App(settings=Settings(redis_url=private_redis.url, data_dir=tmp_path))
    yield tickr_app
    await tickr_app.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("chaos figures")
        for line in FIGURES:
            terminalreporter.write_line(line)
