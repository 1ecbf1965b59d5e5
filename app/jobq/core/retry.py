"""Retry arithmetic: exponential backoff with full jitter."""

from __future__ import annotations

import datetime as dt
import random
from typing import Protocol


class Random(Protocol):
    def random(self) -> float: ...


def backoff_ceiling(attempt: int, base: dt.timedelta, cap: dt.timedelta) -> dt.timedelta:
    """The largest delay before retry number `attempt` (1 = the first retry): base·2^(n-1), capped."""
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    exponent = min(attempt - 1, 62)  # beyond this the cap always wins; avoid huge floats
    return min(cap, base * (2**exponent))


def backoff_delay(
    attempt: int, base: dt.timedelta, cap: dt.timedelta, rng: Random | None = None
) -> dt.timedelta:
    """Full jitter: a uniform delay in [0, ceiling], so retries of many jobs spread out."""
    rng = rng or random.Random()
    return backoff_ceiling(attempt, base, cap) * rng.random()
