"""Backoff: delay = min(max, base * 2**(attempt-1)), the last ``jitter`` fraction of it random; validation."""

from __future__ import annotations

import math
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickr.core import retry
from tickr.core.retry import Backoff

BASES = st.floats(min_value=0, max_value=86_400)
MAXES = st.floats(min_value=0, max_value=7 * 86_400)
JITTERS = st.floats(min_value=0, max_value=1)
ATTEMPTS = st.integers(min_value=1, max_value=200)
LARGEST_RANDOM = 1 - 2**-53  # random.random() is in [0, 1)


def cap(b: Backoff, attempt: int) -> float:
    """The documented delay before jitter."""
    return min(b.max, b.base * 2 ** min(attempt - 1, 62))


class FixedRandom:
    """Stands in for the ``random`` module: ``uniform`` as CPython computes it, with a chosen ``random()``."""

    def __init__(self, r: float) -> None:
        self.r = r

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.r


@settings(max_examples=150, deadline=None)
@given(base=BASES, maximum=MAXES, attempt=ATTEMPTS)
def test_full_jitter_is_within_zero_and_the_capped_delay(base: float, maximum: float, attempt: int) -> None:
    b = Backoff(base=base, max=maximum, jitter=1.0)
    delay = b.next_delay(attempt)
    assert isinstance(delay, float)
    assert 0.0 <= delay <= cap(b, attempt) <= maximum


@settings(max_examples=150, deadline=None)
@given(base=BASES, maximum=MAXES, jitter=JITTERS, attempt=ATTEMPTS, r=st.sampled_from([0.0, 0.5, LARGEST_RANDOM]))
def test_partial_jitter_randomises_only_its_fraction(
    base: float, maximum: float, jitter: float, attempt: int, r: float
) -> None:
    b = Backoff(base=base, max=maximum, jitter=jitter)
    full = cap(b, attempt)
    with mock.patch.object(retry, "random", FixedRandom(r)):
        delay = b.next_delay(attempt)
    assert full * (1.0 - jitter) <= delay <= full <= maximum
    assert delay >= 0.0


@settings(max_examples=100, deadline=None)
@given(base=BASES, maximum=MAXES, jitter=JITTERS, attempt=ATTEMPTS)
def test_real_random_delay_is_never_negative_nor_above_max(
    base: float, maximum: float, jitter: float, attempt: int
) -> None:
    b = Backoff(base=base, max=maximum, jitter=jitter)
    for _ in range(5):
        assert 0.0 <= b.next_delay(attempt) <= maximum


@settings(max_examples=150, deadline=None)
@given(base=BASES, maximum=MAXES, attempt=ATTEMPTS)
def test_no_jitter_is_deterministic_exponential_capped(base: float, maximum: float, attempt: int) -> None:
    b = Backoff(base=base, max=maximum, jitter=0.0)
    assert b.next_delay(attempt) == b.next_delay(attempt) == cap(b, attempt)
    assert b.next_delay(attempt) <= b.next_delay(attempt + 1)  # never shrinks with the attempt


def test_no_jitter_examples() -> None:
    b = Backoff(base=2, max=60, jitter=0)
    assert [b.next_delay(n) for n in range(1, 8)] == [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]


@pytest.mark.parametrize("attempt", [0, -1, -1000])
def test_attempts_below_one_count_as_the_first(attempt: int) -> None:
    assert Backoff(base=3, max=100, jitter=0).next_delay(attempt) == 3.0


def test_huge_attempt_does_not_overflow() -> None:
    assert Backoff(base=1, max=300, jitter=0).next_delay(10**9) == 300.0
    assert Backoff(base=1e300, max=1e308, jitter=0).next_delay(10**9) == 1e308
    assert Backoff(base=0, max=300, jitter=0).next_delay(10**9) == 0.0


def test_defaults_are_full_jitter_one_second_to_five_minutes() -> None:
    assert Backoff() == Backoff(base=1.0, max=300.0, jitter=1.0)
    assert Backoff.from_value(None) == Backoff()


def test_to_dict_and_from_value_round_trip() -> None:
    b = Backoff(base=0.5, max=20, jitter=0.25)
    assert b.to_dict() == {"base": 0.5, "max": 20, "jitter": 0.25}
    assert Backoff.from_value(b.to_dict()) == b
    assert Backoff.from_value(b) is b
    assert Backoff.from_value({"base": 4}) == Backoff(base=4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"base": -0.001}, "base and max must be >= 0"),
        ({"max": -1}, "base and max must be >= 0"),
        ({"jitter": -0.1}, "jitter must be between 0 and 1"),
        ({"jitter": 1.01}, "jitter must be between 0 and 1"),
        ({"jitter": math.nan}, "jitter must be between 0 and 1"),
    ],
)
def test_bad_values_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Backoff(**kwargs)
    with pytest.raises(ValueError, match=message):
        Backoff.from_value(kwargs)


def test_unknown_field_is_refused() -> None:
    with pytest.raises(TypeError):
        Backoff.from_value({"bse": 1.0})


@pytest.mark.parametrize("field", ["base", "max"])
def test_nan_base_or_max_is_refused(field: str) -> None:
    with pytest.raises(ValueError, match="base and max"):
        Backoff(**{field: math.nan})
