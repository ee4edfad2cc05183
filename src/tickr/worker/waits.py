"""Waiting for an event or a due time, precise to ~0.1 ms at the end.

Event-loop timers tick in whole milliseconds (libuv, epoll) and an idle CPU wakes slowly, so a job
due at 12:00:00.000 could be looked at 1-2 ms late. The loop's timer sleeps until ``SPIN_WINDOW``
before the due time; the last stretch yields to the loop in a tight cycle (other tasks keep
running) and ends just past the due time. That costs at most ``SPIN_WINDOW`` of one core per due
time, and only when a job is due that soon; Redis is not polled.
"""

from __future__ import annotations

import asyncio
import time

SPIN_WINDOW = 0.002
OVERSHOOT = 0.0001  # Redis compares whole milliseconds: be a hair past the due time


class DueWaiter:
    """``wait(event, seconds)``: return when ``event`` is set or ``seconds`` have passed, whichever is first."""

    async def wait(self, event: asyncio.Event, seconds: float, precise: bool = True) -> None:
        """``precise=False`` (nothing is due, just a periodic look) skips the final spin."""
        deadline = time.perf_counter() + seconds + OVERSHOOT
        if not precise:
            try:
                async with asyncio.timeout(seconds):
                    await event.wait()
            except TimeoutError:
                pass
            return
        if seconds > SPIN_WINDOW:
            try:
                async with asyncio.timeout(seconds - SPIN_WINDOW):
                    await event.wait()
                    return
            except TimeoutError:
                pass
        while not event.is_set() and time.perf_counter() < deadline:  # noqa: ASYNC110 - a bounded sub-ms spin
            await asyncio.sleep(0)

    def close(self) -> None:
        """Nothing to release (kept so the worker's stop order names every service)."""
