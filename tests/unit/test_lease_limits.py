"""The lease-time limits' arithmetic, with an injected clock: GCRA over a batch, the caps,
and the local share a replica takes while Redis is down (ADR 0017)."""

from __future__ import annotations

import pytest

from jobq.coord.memory import MemoryCoordinator
from jobq.core.limits import Candidate, RateBucket, rate_buckets, within_caps
from jobq.core.model import QueueConfig


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("rate", "burst", "seconds"),
    [(10.0, 5, 3.0), (200.0, 50, 2.0), (0.5, 1, 10.0), (3.0, 20, 7.0)],
)
async def test_gcra_admits_exactly_burst_plus_rate_times_t(rate, burst, seconds) -> None:
    # Given a bucket and a clock that we move by hand
    clock = Clock()
    coord = MemoryCoordinator(clock)
    bucket = [RateBucket("q", rate, burst, "rate")]
    admitted = 0
    # When a backlog (more than can ever fit at once) asks every 10 ms for `seconds`
    steps = round(seconds / 0.01)
    for step in range(steps + 1):
        clock.now = 1000.0 + step * 0.01
        answer = await coord.rate_admit(bucket, [(0,)] * 64, 64, "r", 30)
        admitted += len(answer.admitted)
    # Then exactly burst + rate * t started
    assert admitted == burst + round(rate * seconds)


async def test_a_refused_candidate_is_not_charged() -> None:
    clock = Clock()
    coord = MemoryCoordinator(clock)
    queue, key = RateBucket("q", 1.0, 3, "rate"), RateBucket("k", 1.0, 1, "key_rate")
    # Key "k" has room for one: the second candidate of it is refused, and the queue bucket
    # keeps the unit it would have used for a candidate of no key
    answer = await coord.rate_admit([queue, key], [(0, 1), (0, 1), (0,), (0,)], 10, "r", 30)
    assert answer.admitted == (0, 2, 3)
    assert answer.refused_by == {1: 1}


def test_buckets_are_scoped_by_tenant_and_queue_and_default_to_a_burst_of_one() -> None:
    queue = QueueConfig("emails", tenant="acme", rate_limit=5.0, key_rate_limit=1.0)
    keyed = Candidate("j1", "acme", "emails", rate_key="api.example")
    assert rate_buckets(keyed, queue) == [
        RateBucket("q:acme/emails", 5.0, 1, "rate"),
        RateBucket("k:acme/emails:api.example", 1.0, 1, "key_rate"),
    ]
    # A job without a rate_key draws only from the queue's rate
    assert rate_buckets(Candidate("j2", "acme", "emails"), queue) == [
        RateBucket("q:acme/emails", 5.0, 1, "rate")
    ]


def test_caps_count_what_runs_and_what_this_lease_adds() -> None:
    queue = QueueConfig("q", concurrency_limit=4, key_concurrency_limit=2)
    found = [Candidate(f"j{i}", "default", "q", concurrency_key=k) for i, k in
             enumerate(["a", "a", "a", "b", None, "c"])]  # fmt: skip
    # Given one "a" and one keyless job running already
    kept, dropped = within_caps(found, queue, {"a": 1, None: 1})
    # Then one more "a" fits (cap 2), the third is dropped; then "b"; then the queue is full
    assert [c.job_id for c in kept] == ["j0", "j3"]
    assert dropped == {"key_cap": 2, "queue_cap": 2}
