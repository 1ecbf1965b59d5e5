"""The pure parts of jobq's consumer loop: backoff with jitter, and what /readyz says."""

from __future__ import annotations

from jobq.events.consumer import Backoff, ConsumerHealth


def test_backoff_doubles_up_to_its_cap_and_starts_over_after_a_success() -> None:
    ceilings = Backoff(base=0.5, cap=10.0, rng=lambda: 1.0)
    assert [ceilings.next() for _ in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    ceilings.reset()
    assert ceilings.next() == 0.5


def test_backoff_is_full_jitter_below_the_ceiling() -> None:
    draws = iter([0.0, 0.25, 0.5])
    jittered = Backoff(base=1.0, cap=10.0, rng=lambda: next(draws))
    assert [jittered.next() for _ in range(3)] == [0.0, 0.5, 2.0]


def test_a_member_is_ready_only_with_the_broker_reachable_and_partitions_assigned() -> None:
    health = ConsumerHealth()
    assert health.problem() == "Kafka unreachable: not connected to Kafka yet"
    health.broker_reachable()
    assert health.problem() == "no partitions assigned to this consumer group member"
    health.assigned = frozenset({("job.completed", 0)})
    assert health.problem() is None
    health.broker_unreachable("1/1 brokers are down")
    assert health.problem() == "Kafka unreachable: 1/1 brokers are down"
