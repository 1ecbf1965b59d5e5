"""Backoff arithmetic: exponential ceiling, full jitter, cap."""

import datetime as dt

import pytest

from jobq.core.retry import backoff_ceiling, backoff_delay

SEC = dt.timedelta(seconds=1)


class FixedRandom:
    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


@pytest.mark.parametrize(
    ("attempt", "ceiling"),
    [(1, 1), (2, 2), (3, 4), (4, 8), (10, 512), (11, 600), (500, 600)],
)
def test_ceiling_doubles_from_base_up_to_the_cap(attempt: int, ceiling: int) -> None:
    assert backoff_ceiling(attempt, SEC, 600 * SEC) == ceiling * SEC


@pytest.mark.parametrize(("draw", "expected"), [(0.0, 0.0), (0.5, 4.0), (0.999, 7.992)])
def test_full_jitter_spreads_uniformly_below_the_ceiling(draw: float, expected: float) -> None:
    delay = backoff_delay(4, SEC, 600 * SEC, FixedRandom(draw))
    assert delay.total_seconds() == pytest.approx(expected)


def test_attempts_count_from_one() -> None:
    with pytest.raises(ValueError):
        backoff_ceiling(0, SEC, SEC)
