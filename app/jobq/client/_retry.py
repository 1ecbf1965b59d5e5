"""When the SDK tries a call again: UNAVAILABLE (a replica restarting, a server not up yet)
on a call that is safe to repeat, after an exponentially growing, fully jittered pause.

Only idempotent calls are retried: reads, pause/resume, and a submit that carries an
idempotency key (the server returns the same job for the same key). A submit without a key
is never retried, as the first try may have been committed before the connection broke.
"""

from __future__ import annotations

import dataclasses
import random


@dataclasses.dataclass(frozen=True, slots=True)
class RetryPolicy:
    """`attempts`: tries in all (1: never retry). The n-th pause is drawn uniformly from
    0..min(max_backoff, initial_backoff * multiplier**n) seconds ("full jitter"), so clients
    that lost the same server do not come back in step."""

    attempts: int = 5
    initial_backoff: float = 0.1
    max_backoff: float = 3.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("RetryPolicy.attempts must be at least 1")
        if self.initial_backoff < 0 or self.max_backoff < 0 or self.multiplier < 1:
            raise ValueError("RetryPolicy backoffs must be >= 0 and the multiplier >= 1")

    def pause(self, retry: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number `retry` (0 for the first retry)."""
        ceiling = min(self.max_backoff, self.initial_backoff * self.multiplier**retry)
        return (rng or random).uniform(0, ceiling)


NO_RETRY = RetryPolicy(attempts=1)
