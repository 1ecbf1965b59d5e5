"""Retry arithmetic: exponential backoff with full jitter."""

from __future__ import annotations

import datetime as dt
import random
from typing import Protocol


class Random(Protocol):
    def random(self) -> float: ...


def backoff_ceiling(attempt: int, base: dt.timedelta, cap: dt.timedelta) -> dt.timedelta:
    """The largest delay before retry `attempt` (1 = the first): base * 2^(attempt-1), capped."""
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    # In float seconds: base * 2**n overflows timedelta long before the exponent is large.
    exponent = min(attempt - 1, 1000)
    return dt.timedelta(seconds=min(cap.total_seconds(), base.total_seconds() * 2.0**exponent))


def backoff_delay(
    attempt: int, base: dt.timedelta, cap: dt.timedelta, rng: Random | None = None
) -> dt.timedelta:
    """Full jitter: a uniform delay in [0, ceiling], so retries of many jobs spread out."""
    rng = rng or random.Random()
    return backoff_ceiling(attempt, base, cap) * rng.random()
