"""jq-metrics-aggregator: cluster-wide job metrics, computed from the event stream.

Each jq-server replica counts only the calls it served, so a dashboard or an autoscaler
reading one replica's /metrics sees a part of the cluster. This consumer group
(`jobq-metrics-aggregator`) reads every job transition from Kafka and exports, on its own
/metrics (JQ_METRICS_AGGREGATOR_HTTP_PORT, default 8083):

- `jq_cluster_jobs_total{queue,outcome}`: transitions by outcome: submitted, started,
  succeeded, retried (an attempt failed or its lease expired, another is scheduled),
  dead_lettered, cancelled, expired. Throughput is its rate; the dead-letter rate is
  `outcome="dead_lettered"`.
- `jq_cluster_job_submit_to_start_seconds{queue}`: from a job becoming due to its start.
- `jq_cluster_job_run_seconds{queue,outcome}`: from an attempt's start to its end.
- `jq_kafka_consumer_lag{group,topic,partition}`, as every jobq consumer.

Replicas split the partitions, so `sum` over them is the cluster. Counting is at least once:
a replica that dies before committing counts its last batch again after the restart (its
counters restarted from 0, so `rate()` sees a reset plus at most one batch twice). Times come
from the events (`due_at`, `started_at` in the details), never from when they were read, so
a backlog read after an outage yields the same histograms.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping

from opentelemetry import trace
from prometheus_client import CollectorRegistry, Counter, Histogram

from jobq.config import MetricsAggregatorSettings
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
from jobq.events.result_processor import event_span
from jobq.events.serving import consumer_main, serve_consumer
from jobq.events.topics import TopicNames
from jobq.observability import tracing
from jobq.observability.metrics import JOB_BUCKETS

log = logging.getLogger("jobq.events.aggregator")

SOURCE_TOPICS = (
    topics.SUBMITTED,
    topics.STARTED,
    topics.COMPLETED,
    topics.FAILED,
    topics.DEAD_LETTERED,
    topics.CANCELLED,
    topics.EXPIRED,
)

E = EventKind
# Event kind -> the outcome label; kinds not here (promoted, released, cancel_requested,
# replayed, discarded) move no job through its life and are not counted.
OUTCOME: dict[str, str] = {
    E.SUBMITTED.value: "submitted",
    E.STARTED.value: "started",
    E.SUCCEEDED.value: "succeeded",
    E.RETRY_SCHEDULED.value: "retried",
    E.LEASE_EXPIRED.value: "retried",
    E.DEAD_LETTERED.value: "dead_lettered",
    E.CANCELLED.value: "cancelled",
    E.EXPIRED.value: "expired",
}


class AggregatorMetrics:
    def __init__(self, group: str, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.lag = ConsumerLag(group)
        registry.register(self.lag)
        self.jobs = Counter(
            "jq_cluster_jobs_total",
            "Job transitions across the cluster, from the event stream, by queue and outcome",
            ["queue", "outcome"],
            registry=registry,
        )
        self.submit_to_start = Histogram(
            "jq_cluster_job_submit_to_start_seconds",
            "Time from a job becoming due to its start, across the cluster",
            ["queue"],
            buckets=JOB_BUCKETS,
            registry=registry,
        )
        self.run_time = Histogram(
            "jq_cluster_job_run_seconds",
            "Time from an attempt's start to its end, across the cluster, by outcome",
            ["queue", "outcome"],
            buckets=JOB_BUCKETS,
            registry=registry,
        )


def _seconds_since(details: Mapping[str, object], field: str, at: dt.datetime) -> float | None:
    value = details.get(field)
    if not isinstance(value, str):
        return None
    try:
        since = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if since.tzinfo is None:
        since = since.replace(tzinfo=dt.UTC)
    return max(0.0, (at - since).total_seconds())


class MetricsRecorder:
    """The handler: each event into the counters and histograms (flush has nothing to do)."""

    def __init__(self, metrics: AggregatorMetrics, tracer: trace.Tracer, group: str) -> None:
        self._metrics = metrics
        self._tracer = tracer
        self._group = group

    def handle(self, received: ReceivedEvent) -> None:
        event = received.event
        outcome = OUTCOME.get(event.kind)
        if outcome is None:
            return
        name = f"jq-metrics-aggregator {event.kind}"
        span = event_span(self._tracer, name, received, self._group)
        try:
            queue = event.queue
            self._metrics.jobs.labels(queue, outcome).inc()
            at = event.at.ToDatetime(tzinfo=dt.UTC)
            details = dict(event.details)
            if event.kind == E.STARTED.value:
                delay = _seconds_since(details, "due_at", at)
                if delay is not None:
                    self._metrics.submit_to_start.labels(queue).observe(delay)
            elif outcome != "submitted":
                ran = _seconds_since(details, "started_at", at)
                if ran is not None:
                    self._metrics.run_time.labels(queue, outcome).observe(ran)
        finally:
            span.end()

    def flush(self) -> None:
        return None


class MetricsAggregator(ConsumerLoop):
    def __init__(
        self,
        consumer: EventConsumer,
        names: TopicNames,
        metrics: AggregatorMetrics,
        *,
        lag_interval: float = 5.0,
        tracer: trace.Tracer = tracing.NO_TRACER,
        group: str = "",
    ) -> None:
        super().__init__(
            consumer,
            [names.name(t) for t in SOURCE_TOPICS],
            MetricsRecorder(metrics, tracer, group),
            metrics.lag,
            lag_interval=lag_interval,
        )


def build_consumer(settings: MetricsAggregatorSettings) -> EventConsumer:
    from confluent_kafka import Consumer

    from jobq.events.connection import kafka_config

    health = ConsumerHealth()
    config = consumer_config(
        kafka_config(settings),
        settings.metrics_aggregator_group,
        health,
        settings.kafka_consumer_session_timeout.total_seconds(),
    )
    return EventConsumer(Consumer(config), health=health)


async def run_metrics_aggregator(settings: MetricsAggregatorSettings) -> None:
    """The composition root: consumer, tracer, metrics, HTTP side port; runs until
    SIGINT/SIGTERM."""
    provider = tracing.build_tracer_provider(
        "jq-metrics-aggregator", settings.otlp_endpoint, sample_ratio=settings.trace_sample_ratio
    )
    metrics = AggregatorMetrics(settings.metrics_aggregator_group, CollectorRegistry())
    aggregator = MetricsAggregator(
        build_consumer(settings),
        TopicNames(settings.kafka_topic_prefix),
        metrics,
        lag_interval=settings.metrics_aggregator_lag_interval.total_seconds(),
        tracer=tracing.tracer_from(provider),
        group=settings.metrics_aggregator_group,
    )
    http = (
        settings.metrics_aggregator_http_host,
        settings.metrics_aggregator_http_port,
        "JQ_METRICS_AGGREGATOR_HTTP_PORT",
    )
    await serve_consumer("jq-metrics-aggregator", aggregator, metrics.registry, http, provider, log)


def main() -> None:
    consumer_main("jq-metrics-aggregator", MetricsAggregatorSettings, run_metrics_aggregator)
