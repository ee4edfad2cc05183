"""The Redis server's clock, read from this host: one offset estimate, refreshed, shared by every service.

Scripts read ``TIME`` on the server, so leases, due times and fire times are all server-clock milliseconds.
A service that sleeps until such a time converts it with ``ServerClock.now_ms()`` (local clock + offset),
never with the local clock alone: the two may differ by seconds on different hosts.
"""

from __future__ import annotations

import time
from collections.abc import Callable

REFRESH_SECONDS = 60.0


class ServerClock:
    """Estimates ``server time - local time`` from replies that carry the server's time.

    ``observe(server_ms, sent, received)`` takes a reply's server time and the local times (ms) around the
    round trip; the midpoint gives the offset. ``fixed_ms`` (a test clock) replaces both clocks.
    """

    def __init__(self, fixed_ms: Callable[[], int] | None = None) -> None:
        self._fixed = fixed_ms
        self.offset_ms = 0.0
        self.observed_at: float | None = None  # monotonic time of the last estimate

    @staticmethod
    def local_ms() -> float:
        return time.time() * 1000

    def observe(self, server_ms: int, sent_ms: float, received_ms: float) -> None:
        """Take a new estimate from a round trip. ``server_ms`` is whole ms (floored): +0.5 centres it."""
        self.offset_ms = server_ms + 0.5 - (sent_ms + received_ms) / 2
        self.observed_at = time.monotonic()

    @property
    def stale(self) -> bool:
        """True before the first estimate and once the last one is older than ``REFRESH_SECONDS``."""
        return self._fixed is None and (
            self.observed_at is None or time.monotonic() - self.observed_at > REFRESH_SECONDS
        )

    def now_ms(self) -> float:
        """The server's time now, as estimated here."""
        if self._fixed is not None:
            return float(self._fixed())
        return self.local_ms() + self.offset_ms

    def seconds_until(self, server_ms: float) -> float:
        """Seconds from now until the server-clock time ``server_ms`` (negative if it passed)."""
        return (server_ms - self.now_ms()) / 1000
