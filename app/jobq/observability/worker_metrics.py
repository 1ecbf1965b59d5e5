"""The worker's Prometheus metrics, on its own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, Histogram

from jobq.observability.metrics import JOB_BUCKETS


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.processing = Histogram(
            "jq_job_processing_duration_seconds",
            "Time a task ran, by queue, type and outcome",
            ["queue", "type", "outcome"],
            buckets=JOB_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "jq_worker_jobs_in_flight", "Jobs this worker is running", registry=self.registry
        )
        self.capacity = Gauge(
            "jq_worker_capacity", "Jobs this worker can run at once", registry=self.registry
        )
