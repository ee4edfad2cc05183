"""Shared fixtures: a real Redis/Valkey (the local one, else the embedded binary), unique queues, apps."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis

from tickr.app import App
from tickr.config import Settings
from tickr.store.connection import connect
from tickr.store.store import RedisStore, StoreConfig

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
LOCAL_REDIS = os.environ.get("TICKR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The local Redis when it answers, else a private embedded Valkey for the session."""
    if _answers(LOCAL_REDIS):
        _SESSION_URL.append(LOCAL_REDIS)
        yield LOCAL_REDIS
        return
    from tickr.runtime.embedded import EmbeddedValkey

    try:
        server = EmbeddedValkey(tmp_path_factory.mktemp("valkey"), persistent=False)
        server.start()
    except Exception as exc:
        if IN_CI:
            pytest.fail(f"no Redis at {LOCAL_REDIS} and the embedded Valkey did not start: {exc}")
        pytest.skip(f"no Redis at {LOCAL_REDIS} and the embedded Valkey did not start: {exc}")
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private one-node Valkey cluster with every slot assigned (the embedded binary)."""
    from tickr.runtime.embedded import EmbeddedValkey

    server = EmbeddedValkey(tmp_path_factory.mktemp("cluster"), persistent=False, cluster=True)
    server.start()
    yield server.url
    server.stop()


_SESSION_QUEUES: set[str] = set()
_SESSION_URL: list[str] = []  # the Redis the session used, once the redis_url fixture ran


@pytest.fixture
def queue() -> str:
    """A queue name of this test only: tests are isolated by name, never by flushing."""
    name = f"t-{uuid.uuid4().hex[:12]}"
    _SESSION_QUEUES.add(name)
    return name


@pytest.fixture(scope="session", autouse=True)
def _clean_test_queues() -> Iterator[None]:
    """After the session, delete the keys of this session's test queues: the shared Redis keeps no litter.

    Only this session's queues: another test session may be running against the same Redis.
    """
    yield
    if not (_SESSION_QUEUES and _SESSION_URL):
        return
    client = redis.Redis.from_url(_SESSION_URL[0], decode_responses=True)
    try:
        doomed: list[str] = []
        for pattern in ("tickr:{t-*", "test:runs:{t-*"):
            for key in client.scan_iter(match=pattern, count=5_000):
                if key[key.index("{") + 1 : key.index("}")] not in _SESSION_QUEUES:
                    continue
                doomed.append(key)
                if len(doomed) >= 1_000:
                    client.unlink(*doomed)
                    doomed.clear()
        if doomed:
            client.unlink(*doomed)
        names = sorted(_SESSION_QUEUES)
        for start in range(0, len(names), 1_000):
            client.srem("tickr:queues", *names[start : start + 1_000])
    except redis.RedisError:
        pass  # a server gone at the end of the session has nothing left to clean
    finally:
        client.close()


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[RedisStore]:
    client = connect(redis_url)
    yield RedisStore(client, StoreConfig())
    await client.aclose()


class TestClock:
    """An injectable clock for the scripts (ms)."""

    __test__ = False

    def __init__(self, start_ms: int = 1_800_000_000_000) -> None:
        self.now = start_ms

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1000)


@pytest.fixture
def clock() -> TestClock:
    return TestClock()


@pytest.fixture
async def clocked_store(redis_url: str, clock: TestClock) -> AsyncIterator[RedisStore]:
    """A store whose scripts read ``clock`` instead of the Redis server's TIME."""
    client = connect(redis_url)
    yield RedisStore(client, StoreConfig(lease_ms=10_000), now=clock)
    await client.aclose()


@pytest.fixture
async def app(redis_url: str, tmp_path: Path) -> AsyncIterator[App]:
    tickr_app = App(settings=Settings(redis_url=redis_url, data_dir=tmp_path))
    yield tickr_app
    await tickr_app.close()
