"""Waiting for a due time: returns at the time (not before), or at once when woken."""

from __future__ import annotations

import asyncio
import time

from tickr.worker.waits import DueWaiter


async def test_due_wait_ends_just_after_the_due_time() -> None:
    waiter, event = DueWaiter(), asyncio.Event()
    for seconds in (0.0005, 0.003, 0.03):
        started = time.perf_counter()
        await waiter.wait(event, seconds)
        assert time.perf_counter() - started >= seconds


async def test_due_wait_ends_when_woken() -> None:
    waiter, event = DueWaiter(), asyncio.Event()
    asyncio.get_running_loop().call_later(0.01, event.set)
    started = time.perf_counter()
    await waiter.wait(event, 5.0)
    assert time.perf_counter() - started < 1.0
    event.clear()
    asyncio.get_running_loop().call_later(0.01, event.set)
    await waiter.wait(event, 5.0, precise=False)
    assert event.is_set()
