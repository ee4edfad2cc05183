"""The store's error edge: a server that cannot be reached is ``StoreUnavailable``, an error reply ``StoreError``."""

from __future__ import annotations

import socket

import pytest

import tickr
from tickr.core.errors import StoreError, StoreUnavailable
from tickr.core.factory import new_job
from tickr.store.connection import connect
from tickr.store.store import RedisStore


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def unreachable() -> RedisStore:
    client = connect(f"redis://127.0.0.1:{_closed_port()}/0", socket_connect_timeout=0.5)
    store = RedisStore(client)
    yield store
    await store.close()


async def test_every_path_raises_tickr_errors_when_redis_is_down(unreachable: RedisStore) -> None:
    calls = [
        unreachable.enqueue(new_job("noop", {})),
        unreachable.dequeue("q", 1, "w1"),
        unreachable.ping(),
        unreachable.server_time_ms(),
        unreachable.jobs.get_job("01900000-0000-7000-8000-000000000000"),
        unreachable.queues.stats(["q"]),
        unreachable.queues.counters("q"),
        unreachable.schedules.due_now(1),
        unreachable.workers.live(),
        unreachable.diagnostics.used_memory(),
    ]
    for call in calls:
        with pytest.raises(StoreUnavailable):
            await call


async def test_an_error_reply_is_a_store_error(store: RedisStore) -> None:
    key = store.keys("t-boundary").stats
    await store.redis.set(key, "not a hash")  # a key of the wrong type: WRONGTYPE from the script
    try:
        with pytest.raises(StoreError) as raised:
            await store.queues.counters("t-boundary")
        assert not isinstance(raised.value, StoreUnavailable)
        assert "WRONGTYPE" in str(raised.value)
    finally:
        await store.redis.delete(key)


def test_the_errors_are_public_and_form_one_tree() -> None:
    assert issubclass(tickr.StoreUnavailable, tickr.StoreError)
    assert issubclass(tickr.StoreError, tickr.TickrError)
