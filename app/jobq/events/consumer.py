"""Reading job events: decode each record and drop the duplicates at-least-once delivery brings.

    consumer = EventConsumer(Consumer({**kafka_config(settings), "group.id": "result-processor"}))
    consumer.subscribe(["job.completed", "job.dead-lettered"])
    while (received := consumer.poll(1.0)) is not None or running:
        ...

Duplicates are dropped by event id among the last `remember` events seen (a redelivery
comes within one relay batch of the original, so a window far larger than that is enough).
"""

from __future__ import annotations

import collections
import dataclasses
from typing import TYPE_CHECKING

from jobq.events.codec import decode
from jobq.v1 import events_pb2

if TYPE_CHECKING:
    from confluent_kafka import Consumer


@dataclasses.dataclass(frozen=True, slots=True)
class ReceivedEvent:
    topic: str
    partition: int
    offset: int
    event: events_pb2.JobEvent


class EventConsumer:
    def __init__(self, consumer: Consumer, remember: int = 100_000) -> None:
        self._consumer = consumer
        self._seen: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._remember = remember
        self.duplicates = 0

    def subscribe(self, topics: list[str]) -> None:
        self._consumer.subscribe(topics)

    def poll(self, timeout: float) -> ReceivedEvent | None:
        """The next event not seen before, or None when none came within `timeout`."""
        from confluent_kafka import KafkaException

        message = self._consumer.poll(timeout)
        while message is not None:
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise KafkaException(error)
            else:
                event = decode(message.value() or b"")
                if event.event_id not in self._seen:
                    self._seen[event.event_id] = None
                    if len(self._seen) > self._remember:
                        self._seen.popitem(last=False)
                    return ReceivedEvent(
                        message.topic() or "",
                        message.partition() or 0,
                        message.offset() or 0,
                        event,
                    )
                self.duplicates += 1
            message = self._consumer.poll(0)
        return None

    def commit(self) -> None:
        """Commit, on every assigned partition, the position after the last record read.

        Call it once what poll() returned is processed (at least once). Duplicates dropped
        inside poll() count as read, so a partition ending in a duplicate still reaches lag 0.
        """
        from confluent_kafka import KafkaError, KafkaException

        try:
            self._consumer.commit(asynchronous=False)
        except KafkaException as exc:
            if exc.args and exc.args[0].code() == KafkaError._NO_OFFSET:
                return  # nothing read since the last commit
            raise

    def lag(self, timeout: float = 5.0) -> dict[tuple[str, int], int]:
        """Per assigned (topic, partition): high watermark - the group's committed offset.

        A partition the group never committed counts from the low watermark: everything
        still retained is unread.
        """
        assignment = self._consumer.assignment()
        if not assignment:
            return {}
        lag = {}
        for tp in self._consumer.committed(assignment, timeout=timeout):
            watermarks = self._consumer.get_watermark_offsets(tp, timeout=timeout, cached=False)
            if watermarks is None:
                continue  # the broker did not answer in time: no figure rather than a wrong one
            low, high = watermarks
            committed = tp.offset if tp.offset >= 0 else low
            lag[(tp.topic, tp.partition)] = max(0, high - committed)
        return lag

    def close(self) -> None:
        self._consumer.close()
