"""The relay's own metrics. Its backlog and lag are the server's jq_outbox_backlog and
jq_outbox_oldest_age_seconds gauges (refreshed from the store by the scheduler)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class RelayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.published = Counter(
            "jq_events_published_total",
            "Job events delivered to Kafka and marked published",
            ["topic"],
            registry=registry,
        )
        self.failures = Counter(
            "jq_events_publish_failures_total",
            "Relay batches that did not deliver whole (retried from the first undelivered)",
            registry=registry,
        )
