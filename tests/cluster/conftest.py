"""The cluster suite: a REAL Redis Cluster for the session (3 primaries, 3 replicas, loopback ports from 7000).

Started from redis-server (or valkey-server) and ``redis-cli --cluster create``; a failure to start skips the
suite locally and fails it when ``CI=true``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.cluster.servers import Cluster, free_ports, start_or_skip
from tickr.app import App
from tickr.config import Settings
from tickr.store.connection import connect
from tickr.store.store import RedisStore, StoreConfig


@pytest.fixture(scope="session")
def real_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """3 primaries with a replica each, ``cluster_state:ok``; stopped (SIGKILL) at the end of the session."""
    cluster = Cluster(tmp_path_factory.mktemp("real-cluster"), free_ports(6, 7000))
    start_or_skip(cluster, "the Redis Cluster")
    yield cluster
    cluster.stop()


@pytest.fixture
def cluster_url(real_cluster: Cluster) -> str:  # overrides the one-node cluster of tests/conftest.py here
    return real_cluster.url


@pytest.fixture
async def cstore(real_cluster: Cluster) -> AsyncIterator[RedisStore]:
    """A store on the cluster whose state changes wait for one replica (TICKR_REDIS_MIN_REPLICAS=1)."""
    client = connect(real_cluster.url)
    yield RedisStore(client, StoreConfig(lease_ms=2_000, min_replicas=1))
    await client.aclose()


@pytest.fixture
async def capp(real_cluster: Cluster, tmp_path: Path) -> AsyncIterator[App]:
    tickr_app = App(settings=Settings(redis_url=real_cluster.url, redis_min_replicas=1, data_dir=tmp_path))
    yield tickr_app
    await tickr_app.close()
