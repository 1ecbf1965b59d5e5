"""jobq's consumer loop without a broker: backoff with jitter, what /readyz says, and how a
member cut off from its broker notices."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaException, TopicPartition

from jobq.events.consumer import Backoff, ConsumerHealth, EventConsumer
from jobq.v1 import events_pb2


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


class Record:
    """A confluent_kafka Message as poll() hands it over."""

    def __init__(self, offset: int) -> None:
        self._offset = offset
        self._value = events_pb2.JobEvent(event_id=f"e{offset}", job_id="j").SerializeToString()

    def error(self) -> None:
        return None

    def value(self) -> bytes:
        return self._value

    def topic(self) -> str:
        return "job.completed"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset


class CutOffClient:
    """A librdkafka consumer whose broker has just gone: records fetched before still come
    out of poll(), and every request to the broker times out."""

    def __init__(self, prefetched: int, partitions: int) -> None:
        self.queue = [Record(i) for i in range(prefetched)]
        self.partitions = [TopicPartition("job.completed", p, 0) for p in range(partitions)]
        self.watermark_requests = 0

    def poll(self, timeout: float) -> Record | None:
        return self.queue.pop(0) if self.queue else None

    def assignment(self) -> list[TopicPartition]:
        return self.partitions

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        return partitions  # answered from what this member committed itself

    def get_watermark_offsets(
        self, tp: TopicPartition, timeout: float, cached: bool
    ) -> tuple[int, int] | None:
        self.watermark_requests += 1
        return None  # what confluent_kafka returns when the broker did not answer in time


def test_records_fetched_before_an_outage_do_not_make_a_cut_off_member_ready() -> None:
    consumer = EventConsumer(CutOffClient(prefetched=3, partitions=1))  # type: ignore[arg-type]
    consumer.health.assigned = frozenset({("job.completed", 0)})
    consumer.health.broker_unreachable("1/1 brokers are down")  # error_cb, said once

    drained = [consumer.poll(0.5) for _ in range(3)]

    assert [r.offset for r in drained if r is not None] == [0, 1, 2]
    assert consumer.health.problem() == "Kafka unreachable: 1/1 brokers are down"


def test_a_lag_refresh_gives_up_at_the_first_partition_the_broker_does_not_answer_for() -> None:
    client = CutOffClient(prefetched=0, partitions=21)
    consumer = EventConsumer(client)  # type: ignore[arg-type]

    with pytest.raises(KafkaException, match=r"no watermarks for job\.completed/0"):
        consumer.lag(timeout=5.0)
    assert client.watermark_requests == 1  # not 21 requests of 5 s each
