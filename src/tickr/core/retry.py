"""Retry policy: exponential backoff with jitter."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Protocol


class RetryPolicy(Protocol):
    """Decides how long to wait before the next attempt; ``None`` means give up."""

    def next_delay(self, attempt: int, error: BaseException | None) -> float | None: ...


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff: ``base * 2**(attempt-1)`` capped at ``max`` seconds.

    ``jitter`` is the fraction of the delay that is randomised: 1.0 is "full jitter"
    (uniform in ``[0, delay]``), 0.0 is no jitter.
    """

    base: float = 1.0
    max: float = 300.0
    jitter: float = 1.0

    def __post_init__(self) -> None:
        for name, value in (("base", self.base), ("max", self.max)):
            if not math.isfinite(value):
                raise ValueError(f"backoff base and max must be finite numbers, got {name}={value!r}")
        if self.base < 0 or self.max < 0:
            raise ValueError("backoff base and max must be >= 0")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("backoff jitter must be between 0 and 1")

    def next_delay(self, attempt: int, error: BaseException | None = None) -> float:
        """Delay in seconds before retrying after failed attempt number ``attempt`` (1-based)."""
        exponent = max(0, min(attempt - 1, 62))
        delay = min(self.max, self.base * (2**exponent))
        if self.jitter:
            fixed = delay * (1.0 - self.jitter)
            delay = fixed + random.uniform(0.0, delay - fixed)
        return float(delay)

    def to_dict(self) -> dict[str, float]:
        return {"base": self.base, "max": self.max, "jitter": self.jitter}

    @classmethod
    def from_value(cls, value: Backoff | dict[str, float] | None) -> Backoff:
        if value is None:
            return cls()
        if isinstance(value, Backoff):
            return value
        return cls(**value)
