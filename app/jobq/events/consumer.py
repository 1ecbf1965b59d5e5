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

    def close(self) -> None:
        self._consumer.close()
