"""RetryPolicy: exponential ceilings, full jitter, bounded."""

from __future__ import annotations

import random

import pytest

from jobq import RetryPolicy


def test_pauses_grow_exponentially_up_to_the_cap_and_are_jittered() -> None:
    policy = RetryPolicy(attempts=10, initial_backoff=0.1, max_backoff=1.0, multiplier=2.0)
    rng = random.Random(7)
    pauses = [[policy.pause(n, rng) for _ in range(200)] for n in range(6)]
    ceilings = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    for drawn, ceiling in zip(pauses, ceilings, strict=True):
        assert all(0 <= p <= ceiling for p in drawn)
        assert max(drawn) > 0.8 * ceiling  # spread over the whole range: full jitter
        assert len(set(drawn)) > 150


@pytest.mark.parametrize("bad", [{"attempts": 0}, {"multiplier": 0.5}, {"max_backoff": -1}])
def test_a_nonsense_policy_is_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**bad)  # type: ignore[arg-type]
