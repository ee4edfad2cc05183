"""Creating Redis/Valkey clients (single server or cluster) with tickr's defaults."""

from __future__ import annotations

from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster


def connect(url: str, *, cluster: bool = False, max_connections: int = 128, **options: Any) -> Redis:
    """An asyncio client for ``url``; responses are decoded to ``str``.

    Cluster clients route each script by its first key's hash slot; tickr's keys of one
    queue share a slot, so the same scripts run on both.
    """
    options.setdefault("decode_responses", True)
    options.setdefault("health_check_interval", 30)
    if cluster:
        return RedisCluster.from_url(url, **options)  # type: ignore[return-value]
    # A blocking pool: a burst of concurrent calls waits for a connection instead of failing.
    pool = BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=None, **options)
    return Redis(connection_pool=pool)
