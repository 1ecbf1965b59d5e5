"""jq-result-processor: one JSON line per finished job, read from Kafka.

The consumer group `jobq-result-processor` reads `job.completed` and `job.dead-lettered`,
drops duplicates by event id (`EventConsumer`), writes one line per job that succeeded or was
dead-lettered:

    {"job_id": "...", "queue": "default", "outcome": "succeeded", "attempt": 1,
     "correlation_id": "...", "at": "2026-01-01T12:00:00.000000+00:00", "event_id": "..."}

and commits offsets only after those lines are written and flushed (fsynced when the output
is a file): at least once. Replayed and discarded dead letters share the dead-letter topic
but finish nothing, so they are read and committed without a line.

Across restarts: a processor killed between writing and committing is sent those events
again. Writing to stdout, it writes their lines again (at most the lines since its last
commit); downstream drops them by `event_id`. Writing to a file (JQ_RESULT_PROCESSOR_OUTPUT),
the file is its own dedupe log: at start it drops a torn last line and remembers the event
ids of the last lines written, so the redelivered events are dropped and the file holds each
finished job exactly once (one processor per file; see ADR 0010).

It rides out broker outages and rebalances (`ConsumerLoop`): /readyz answers 503 while Kafka
is unreachable or no partition is assigned, and it resumes from its committed offsets.
Each event is processed in a span whose parent is the event's trace context: the job's trace.

Its /metrics (JQ_RESULT_PROCESSOR_HTTP_PORT, default 8082) exports
`jq_kafka_consumer_lag{group,topic,partition}` = high watermark - committed offset for each
partition this member is assigned, and `jq_results_processed_total{outcome}`.

A process of its own rather than a `jq-ctl` command: it is a daemon with its own scrape job
(`jq-result-processor`, like `jq-server` and `jq-worker`), scaled up to the partitions.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, TextIO

from opentelemetry import trace
from prometheus_client import CollectorRegistry, Counter

from jobq.config import ResultProcessorSettings
from jobq.core.states import EventKind
from jobq.events import topics
from jobq.events.consumer import (
    ConsumerHealth,
    ConsumerLag,
    ConsumerLoop,
    EventConsumer,
    ReceivedEvent,
    consumer_config,
)
from jobq.events.serving import consumer_main, serve_consumer
from jobq.events.topics import TopicNames
from jobq.observability import tracing
from jobq.v1 import events_pb2

log = logging.getLogger("jobq.events.result_processor")

FINISHED = frozenset({EventKind.SUCCEEDED.value, EventKind.DEAD_LETTERED.value})
SOURCE_TOPICS = (topics.COMPLETED, topics.DEAD_LETTERED)
REMEMBER = 100_000  # event ids kept for dedupe, in memory and recovered from the output file

__all__ = ["ConsumerLag", "ResultMetrics", "ResultProcessor", "build_consumer", "result_line"]


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


def event_span(tracer: trace.Tracer, name: str, received: ReceivedEvent, group: str) -> trace.Span:
    """A consumer span for one event, a child of the job's trace (the event's trace context)."""
    event = received.event
    return tracer.start_span(
        name,
        context=tracing.extract(event.trace_context),
        kind=trace.SpanKind.CONSUMER,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation": "process",
            "messaging.destination.name": received.topic,
            "messaging.destination.partition.id": str(received.partition),
            "messaging.kafka.message.offset": received.offset,
            "messaging.kafka.consumer.group": group,
            "messaging.message.id": event.event_id,
            "jobq.job_id": event.job_id,
            "jobq.queue": event.queue,
            "jobq.event.kind": event.kind,
        },
    )


class ResultWriter:
    """The handler: a line per finished job into `out`; flush() makes the lines durable."""

    def __init__(
        self, out: TextIO, metrics: ResultMetrics, tracer: trace.Tracer, group: str
    ) -> None:
        self._out = out
        self._metrics = metrics
        self._tracer = tracer
        self._group = group

    def handle(self, received: ReceivedEvent) -> None:
        event = received.event
        span = event_span(self._tracer, f"jq-result-processor {event.kind}", received, self._group)
        try:
            if event.kind in FINISHED:
                self._out.write(result_line(event) + "\n")
                self._metrics.processed.labels(event.kind).inc()
                span.set_attribute("jobq.result.written", True)
        finally:
            span.end()

    def flush(self) -> None:
        self._out.flush()
        try:
            fd = self._out.fileno()
        except (OSError, ValueError):  # an in-memory stream
            return
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.fsync(fd)  # a file is the dedupe log: what is committed must be on disk


class ResultProcessor(ConsumerLoop):
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
        tracer: trace.Tracer = tracing.NO_TRACER,
        group: str = "",
        after_flush: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(
            consumer,
            [names.name(t) for t in SOURCE_TOPICS],
            ResultWriter(out, metrics, tracer, group),
            metrics.lag,
            max_batch=max_batch,
            lag_interval=lag_interval,
            after_flush=after_flush,
        )


def open_output(path: Path, remember: int = REMEMBER) -> tuple[TextIO, list[str]]:
    """The output file, opened to append, and the event ids of its last `remember` lines.

    A line cut short by a crash mid-write is dropped (its event was not committed, so it
    comes again); so is anything after the last newline.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as raw:
        raw.seek(0, os.SEEK_END)
        size = raw.tell()
        ids = _tail_event_ids(raw, size, remember)
    return open(path, "a", encoding="utf-8"), ids  # closed by the caller


def _tail_event_ids(raw: BinaryIO, size: int, remember: int) -> list[str]:
    # Read backwards in blocks until `remember` whole lines are in hand.
    block, chunks, newlines, position = 1 << 16, [], 0, size
    while position > 0 and newlines <= remember:
        step = min(block, position)
        position -= step
        raw.seek(position)
        chunk = raw.read(step)
        newlines += chunk.count(b"\n")
        chunks.append(chunk)
    data = b"".join(reversed(chunks))
    end = data.rfind(b"\n") + 1
    if position + end < size:  # a torn last line: cut it off
        raw.truncate(position + end)
        log.warning("dropped a partial last line from the output (%d bytes)", size - position - end)
    lines = data[:end].splitlines()
    if position > 0:
        lines = lines[1:]  # the first may be a fragment of a longer line
    ids = []
    for line in lines[-remember:]:
        try:
            ids.append(str(json.loads(line)["event_id"]))
        except (ValueError, KeyError, TypeError):
            continue
    return ids


def build_consumer(
    settings: ResultProcessorSettings, health: ConsumerHealth | None = None
) -> EventConsumer:
    from confluent_kafka import Consumer

    from jobq.events.connection import kafka_config

    health = health or ConsumerHealth()
    config = consumer_config(
        kafka_config(settings),
        settings.result_processor_group,
        health,
        settings.kafka_consumer_session_timeout.total_seconds(),
    )
    return EventConsumer(Consumer(config), REMEMBER, health)


def _crash_after_write() -> None:
    # JQ_TEST_FAULT=result-processor-crash-after-write: die as a kill -9 would, in the window
    # the dedupe is about (lines written and flushed, offsets not committed).
    log.warning("test fault: SIGKILL after writing, before commit")
    os.kill(os.getpid(), signal.SIGKILL)


async def run_result_processor(
    settings: ResultProcessorSettings, out: TextIO | None = None
) -> None:
    """The composition root: output, consumer, tracer, metrics, HTTP side port; runs until
    SIGINT/SIGTERM."""
    seen: list[str] = []
    if out is None:
        if settings.result_processor_output:
            out, seen = open_output(Path(settings.result_processor_output))
        else:
            out = sys.stdout
    provider = tracing.build_tracer_provider(
        "jq-result-processor", settings.otlp_endpoint, sample_ratio=settings.trace_sample_ratio
    )
    metrics = ResultMetrics(settings.result_processor_group, CollectorRegistry())
    consumer = build_consumer(settings)
    consumer.remember_seen(seen)
    crash = settings.test_fault == "result-processor-crash-after-write"
    processor = ResultProcessor(
        consumer,
        TopicNames(settings.kafka_topic_prefix),
        metrics,
        out,
        lag_interval=settings.result_processor_lag_interval.total_seconds(),
        tracer=tracing.tracer_from(provider),
        group=settings.result_processor_group,
        after_flush=_crash_after_write if crash else None,
    )
    http = (
        settings.result_processor_http_host,
        settings.result_processor_http_port,
        "JQ_RESULT_PROCESSOR_HTTP_PORT",
    )
    try:
        await serve_consumer(
            "jq-result-processor",
            processor,
            metrics.registry,
            http,
            provider,
            log,
            recovered_event_ids=len(seen),
        )
    finally:
        if out is not sys.stdout:
            out.close()


def main() -> None:
    consumer_main("jq-result-processor", ResultProcessorSettings, run_result_processor)
