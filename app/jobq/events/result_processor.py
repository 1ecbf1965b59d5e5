"""jq-result-processor: one JSON line on stdout per finished job, read from Kafka.

The consumer group `jobq-result-processor` reads `job.completed` and `job.dead-lettered`,
drops duplicates by event id (`EventConsumer`), writes one line per job that succeeded or was
dead-lettered:

    {"job_id": "...", "queue": "default", "outcome": "succeeded", "attempt": 1,
     "correlation_id": "...", "at": "2026-01-01T12:00:00.000000+00:00", "event_id": "..."}

and commits offsets only after those lines are written and flushed: at least once. A
processor killed between writing and committing writes those lines again when it restarts;
within one run a duplicate record is written once. Replayed and discarded dead letters share
the dead-letter topic but finish nothing, so they are read and committed without a line.

Its /metrics (JQ_RESULT_PROCESSOR_HTTP_PORT, default 8082) exports
`jq_kafka_consumer_lag{group,topic,partition}` = high watermark - committed offset for each
partition this member is assigned, and `jq_results_processed_total{outcome}`.

A process of its own rather than a `jq-ctl` command: it is a daemon with its own scrape job
(`jq-result-processor`, like `jq-server` and `jq-worker`), scaled up to the partitions.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import TextIO

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from jobq.config import ResultProcessorSettings
from jobq.core.states import EventKind
from jobq.events import topics
from jobq.events.consumer import EventConsumer
from jobq.events.topics import TopicNames
from jobq.v1 import events_pb2

log = logging.getLogger("jobq.events.result_processor")

FINISHED = frozenset({EventKind.SUCCEEDED.value, EventKind.DEAD_LETTERED.value})
SOURCE_TOPICS = (topics.COMPLETED, topics.DEAD_LETTERED)


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


class ResultMetrics:
    def __init__(self, group: str, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.lag = ConsumerLag(group)
        registry.register(self.lag)
        self.processed = Counter(
            "jq_results_processed_total",
            "Finished jobs written by the result processor, by outcome",
            ["outcome"],
            registry=registry,
        )


def result_line(event: events_pb2.JobEvent) -> str:
    return json.dumps(
        {
            "job_id": event.job_id,
            "queue": event.queue,
            "outcome": event.kind,
            "attempt": event.attempt,
            "correlation_id": event.correlation_id,
            "at": event.at.ToDatetime().isoformat(timespec="microseconds") + "+00:00",
            "event_id": event.event_id,
        },
        separators=(", ", ": "),
    )


class ResultProcessor:
    """The consume - write - commit loop. Blocking: run it in a thread; `stop` ends it."""

    def __init__(
        self,
        consumer: EventConsumer,
        names: TopicNames,
        metrics: ResultMetrics,
        out: TextIO,
        *,
        max_batch: int = 500,
        lag_interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._consumer = consumer
        self._topics = [names.name(t) for t in SOURCE_TOPICS]
        self._metrics = metrics
        self._out = out
        self._max_batch = max_batch
        self._lag_interval = lag_interval
        self._clock = clock
        self.stop = threading.Event()

    def run(self) -> None:
        self._consumer.subscribe(self._topics)
        next_lag = 0.0
        try:
            while not self.stop.is_set():
                self.process_batch()
                if self._clock() >= next_lag:
                    self.refresh_lag()
                    next_lag = self._clock() + self._lag_interval
        finally:
            self.refresh_lag_quietly()
            self._consumer.close()

    def process_batch(self, wait: float = 0.5) -> int:
        """Read up to max_batch events, write their lines, then commit; return lines written."""
        written = 0
        received = self._consumer.poll(wait)
        for _ in range(self._max_batch):
            if received is None:
                break
            event = received.event
            if event.kind in FINISHED:
                self._out.write(result_line(event) + "\n")
                self._metrics.processed.labels(event.kind).inc()
                written += 1
            received = self._consumer.poll(0)
        self._out.flush()
        self._consumer.commit()  # only once the lines are out: at least once
        return written

    def refresh_lag(self) -> None:
        self._metrics.lag.update(self._consumer.lag())

    def refresh_lag_quietly(self) -> None:
        try:
            self.refresh_lag()
        except Exception as exc:  # the broker may be what stopped us
            log.warning("could not refresh consumer lag: %s", exc)


def build_consumer(settings: ResultProcessorSettings) -> EventConsumer:
    from confluent_kafka import Consumer

    from jobq.events.connection import kafka_config

    return EventConsumer(
        Consumer(
            {
                **kafka_config(settings),
                "group.id": settings.result_processor_group,
                # A new group starts at the oldest retained event: no finished job is skipped.
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
    )


async def run_result_processor(settings: ResultProcessorSettings, out: TextIO = sys.stdout) -> None:
    """The composition root: consumer, metrics, HTTP side port; runs until SIGINT/SIGTERM."""
    from jobq.observability.http import HttpSidePort, build_http_app

    metrics = ResultMetrics(settings.result_processor_group, CollectorRegistry())
    processor = ResultProcessor(
        build_consumer(settings),
        TopicNames(settings.kafka_topic_prefix),
        metrics,
        out,
        lag_interval=settings.result_processor_lag_interval.total_seconds(),
    )
    http = HttpSidePort(
        build_http_app(metrics.registry, None),
        settings.result_processor_http_host,
        settings.result_processor_http_port,
    )
    port = await http.start()
    log.info("jq-result-processor running", extra={"http_port": port})
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, processor.stop.set)
    try:
        await asyncio.to_thread(processor.run)
    finally:
        await http.stop()


def main() -> None:
    from jobq.config import ConfigError, load
    from jobq.observability.logging import configure_logging

    try:
        settings = load(ResultProcessorSettings)
    except ConfigError as exc:
        print(f"jq-result-processor: configuration error: {exc}", file=sys.stderr)
        sys.exit(2)
    if not settings.kafka_bootstrap_servers:
        print("jq-result-processor: JQ_KAFKA_BOOTSTRAP_SERVERS is not set", file=sys.stderr)
        sys.exit(2)
    configure_logging(settings.log_level, settings.log_format, "jq-result-processor")
    asyncio.run(run_result_processor(settings))
