"""Reading job events: decode each record, drop the duplicates at-least-once delivery brings,
and keep consuming through broker outages and rebalances.

    consumer = EventConsumer(Consumer({**kafka_config(settings), "group.id": "result-processor"}))
    loop = ConsumerLoop(consumer, topics, handler, lag)   # handler: handle() each, flush()
    loop.run()                                            # until loop.stop is set

Duplicates are dropped by event id among the last `remember` events seen (a redelivery
comes within one relay batch of the original, so a window far larger than that is enough);
`remember_seen` seeds that window from what a previous run wrote (see result_processor).

`ConsumerLoop` is the one consume - handle - flush - commit loop every jobq consumer group
runs. A broker that stops answering is not an error to die of: the loop reports not ready
(`ConsumerHealth`, behind /readyz), waits with exponential backoff and full jitter, and tries
again; librdkafka reconnects by itself and the group resumes from its committed offsets.
Only a fatal client error ends the loop.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from jobq.events.codec import decode
from jobq.v1 import events_pb2

if TYPE_CHECKING:
    from confluent_kafka import Consumer, KafkaError, TopicPartition

log = logging.getLogger("jobq.events.consumer")


@dataclasses.dataclass(frozen=True, slots=True)
class ReceivedEvent:
    topic: str
    partition: int
    offset: int
    event: events_pb2.JobEvent


class ConsumerHealth:
    """Whether this member can do its work: the broker answers and it holds partitions.

    Written by the consumer thread (callbacks run inside poll), read by /readyz.
    """

    def __init__(self) -> None:
        self.assigned: frozenset[tuple[str, int]] = frozenset()
        self.broker_error: str | None = "not connected to Kafka yet"

    def broker_reachable(self) -> None:
        self.broker_error = None

    def broker_unreachable(self, why: str) -> None:
        self.broker_error = why

    def problem(self) -> str | None:
        """None when ready, else why not (the /readyz reason)."""
        if self.broker_error is not None:
            return f"Kafka unreachable: {self.broker_error}"
        if not self.assigned:
            return "no partitions assigned to this consumer group member"
        return None

    async def readiness(self) -> str | None:
        return self.problem()


class EventConsumer:
    def __init__(
        self,
        consumer: Consumer,
        remember: int = 100_000,
        health: ConsumerHealth | None = None,
    ) -> None:
        self._consumer = consumer
        self._seen: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._remember = remember
        self.health = health or ConsumerHealth()
        self.duplicates = 0

    def subscribe(self, topics: list[str]) -> None:
        self._consumer.subscribe(topics, on_assign=self._assigned, on_revoke=self._revoked)

    def _assigned(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.health.assigned = frozenset((p.topic, p.partition) for p in partitions)
        self.health.broker_reachable()  # the group coordinator just answered
        log.info("partitions assigned", extra={"partitions": len(partitions)})

    def _revoked(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Everything handled is committed after each batch, so nothing is owed to the next owner.
        gone = {(p.topic, p.partition) for p in partitions}
        self.health.assigned = self.health.assigned - gone
        log.info("partitions revoked", extra={"partitions": len(partitions)})

    def remember_seen(self, event_ids: Iterable[str]) -> None:
        """Treat these events as already handled (oldest first), as if read in this run."""
        for event_id in event_ids:
            self._seen[event_id] = None
            self._seen.move_to_end(event_id)
        while len(self._seen) > self._remember:
            self._seen.popitem(last=False)

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
                # No broker_reachable() here: a record can come from what librdkafka fetched
                # before the broker went away, and the error that said so is not repeated.
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
        still retained is unread. Raises KafkaException when the broker does not answer,
        at the first partition that times out: waiting `timeout` for each of 21 partitions
        held the loop (and so /readyz) for a minute into an outage.
        """
        from confluent_kafka import KafkaError, KafkaException

        assignment = self._consumer.assignment()
        if not assignment:
            return {}
        lag = {}
        for tp in self._consumer.committed(assignment, timeout=timeout):
            watermarks = self._consumer.get_watermark_offsets(tp, timeout=timeout, cached=False)
            if watermarks is None:
                why = f"no watermarks for {tp.topic}/{tp.partition}"
                raise KafkaException(KafkaError(KafkaError._TIMED_OUT, why))
            low, high = watermarks
            committed = tp.offset if tp.offset >= 0 else low
            lag[(tp.topic, tp.partition)] = max(0, high - committed)
        return lag

    def close(self) -> None:
        self._consumer.close()


def consumer_config(
    base: dict[str, Any], group: str, health: ConsumerHealth, session_timeout: float = 45.0
) -> dict[str, Any]:
    """librdkafka options for a jobq consumer group member that reports its broker's health.

    `session_timeout`: how long the group waits for a silent member (a killed process, a
    broker outage) before giving its partitions to the others.
    """

    def on_error(error: KafkaError) -> None:
        from confluent_kafka import KafkaError

        # Transport errors are retried by librdkafka itself; they only say we are cut off.
        # Logged once per outage, not once per reconnect attempt.
        if error.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT):
            if health.broker_error is None:
                log.warning("Kafka unreachable, reconnecting: %s", error.str())
            health.broker_unreachable(error.str())
            return
        log.warning("Kafka client error: %s", error.str())

    session_ms = int(session_timeout * 1000)
    return {
        **base,
        "group.id": group,
        # A new group starts at the oldest retained event: nothing is skipped.
        "auto.offset.reset": "earliest",
        # Offsets are committed by ConsumerLoop, only after the handler has flushed.
        "enable.auto.commit": False,
        "session.timeout.ms": session_ms,
        "heartbeat.interval.ms": max(100, min(3000, session_ms // 3)),
        # Reconnects back off exponentially (librdkafka adds jitter) up to 10 s.
        "reconnect.backoff.ms": 500,
        "reconnect.backoff.max.ms": 10000,
        # The lag refresh asks for each partition's watermarks in turn, and each request
        # waits behind the fetch in flight on the connection: at the default 500 ms, 60
        # partitions took 30 s (jq-metrics-aggregator reads 42, and did not stop on SIGTERM
        # within a pod's grace period); at 100 ms a refresh is a few seconds.
        "fetch.wait.max.ms": 100,
        "error_cb": on_error,
    }


class ConsumerLag(Collector):
    """`jq_kafka_consumer_lag` from the latest snapshot, swapped whole (scrapes come from
    another thread) so partitions revoked from this member disappear with it."""

    def __init__(self, group: str) -> None:
        self._group = group
        self._lag: dict[tuple[str, int], int] = {}

    def update(self, lag: dict[tuple[str, int], int]) -> None:
        self._lag = dict(lag)

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "jq_kafka_consumer_lag",
            "Job events a consumer group has yet to read, per partition",
            labels=["group", "topic", "partition"],
        )
        for (topic, partition), lag in sorted(self._lag.items()):
            family.add_metric([self._group, topic, str(partition)], lag)
        yield family


class Handler(Protocol):
    def handle(self, received: ReceivedEvent) -> None:
        """Process one new event (its effect may be buffered until flush)."""

    def flush(self) -> None:
        """Make what handle() did durable: offsets are committed right after."""


class Backoff:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2^n)]."""

    def __init__(
        self, base: float = 0.5, cap: float = 10.0, rng: Callable[[], float] = random.random
    ) -> None:
        self._base, self._cap, self._rng = base, cap, rng
        self._failures = 0

    def next(self) -> float:
        ceiling = min(self._cap, self._base * 2.0 ** min(self._failures, 32))
        self._failures += 1
        return ceiling * self._rng()

    def reset(self) -> None:
        self._failures = 0


class ConsumerLoop:
    """Consume - handle - flush - commit until `stop` is set. Blocking: run it in a thread."""

    def __init__(
        self,
        consumer: EventConsumer,
        topics: list[str],
        handler: Handler,
        lag: ConsumerLag,
        *,
        max_batch: int = 500,
        lag_interval: float = 5.0,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
        after_flush: Callable[[], None] | None = None,
    ) -> None:
        self._consumer = consumer
        self._topics = topics
        self._handler = handler
        self._lag = lag
        self._max_batch = max_batch
        self._lag_interval = lag_interval
        self._backoff = backoff or Backoff()
        self._clock = clock
        self._after_flush = after_flush
        self.health = consumer.health
        self.stop = threading.Event()

    def run(self) -> None:
        from confluent_kafka import KafkaException

        self._consumer.subscribe(self._topics)
        next_lag = 0.0
        try:
            while not self.stop.is_set():
                try:
                    self.process_batch()
                    if self._clock() >= next_lag:
                        next_lag = self._clock() + self._lag_interval
                        self.refresh_lag()
                    self._backoff.reset()
                except KafkaException as exc:
                    error = exc.args[0] if exc.args else None
                    if error is not None and hasattr(error, "fatal") and error.fatal():
                        raise
                    # Not fatal: the broker is away or the group is rebalancing. What was
                    # handled but not committed is committed by the next successful round.
                    self.health.broker_unreachable(str(exc))
                    delay = self._backoff.next()
                    log.warning("Kafka unavailable, retrying in %.1fs: %s", delay, exc)
                    self.stop.wait(delay)
        finally:
            # No last lag refresh: the gauge goes with the process, and a refresh is a
            # request per partition (see fetch.wait.max.ms in consumer_config).
            self._consumer.close()

    def process_batch(self, wait: float = 0.5) -> int:
        """Read up to max_batch events, hand each to the handler, flush, then commit."""
        handled = 0
        received = self._consumer.poll(wait)
        for _ in range(self._max_batch):
            if received is None:
                break
            self._handler.handle(received)
            handled += 1
            received = self._consumer.poll(0)
        self._handler.flush()
        if handled and self._after_flush is not None:
            self._after_flush()
        self._consumer.commit()  # only once the handler's output is durable: at least once
        return handled

    def refresh_lag(self) -> None:
        """The lag gauge from the broker; a broker that answers is reachable again."""
        lag = self._consumer.lag()
        if lag:  # with no partition assigned, lag() asked the broker nothing
            self.health.broker_reachable()
        self._lag.update(lag)
