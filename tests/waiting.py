"""The one polling helper of the suite: wait for a condition with a deadline, never for a fixed time."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")
POLL_SECONDS = 0.02


async def wait_until(
    predicate: Callable[[], T | Awaitable[T]], timeout: float = 10.0, *, message: str = "condition"
) -> T:
    """Return the first truthy value of ``predicate()`` (sync or async); ``AssertionError`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {message}")
        await asyncio.sleep(POLL_SECONDS)  # the poll interval of the one polling helper


def wait_until_sync(predicate: Callable[[], T], timeout: float = 10.0, *, message: str = "condition") -> T:
    """``wait_until`` for code outside an event loop."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {message}")
        time.sleep(POLL_SECONDS)  # the poll interval of the one polling helper
