"""The metrics jobq promises to export: the one list that alerts, dashboards and
scrape tests are checked against.

``METRICS`` maps each metric name, as it appears in a PromQL query (histograms by
their base name, counters with their ``_total``), to its Prometheus type.
``EXPORTED_BY`` says which scrape job serves it, so a test that scrapes a real
``jq-server``, ``jq-worker``, ``jq-result-processor`` or ``jq-metrics-aggregator`` can
check its own part.

Change a name here only together with the code that exports it.
"""

from __future__ import annotations

from typing import Final, Literal

MetricType = Literal["counter", "gauge", "histogram"]

SERVER_JOB: Final = "jq-server"
WORKER_JOB: Final = "jq-worker"
RESULT_PROCESSOR_JOB: Final = "jq-result-processor"
METRICS_AGGREGATOR_JOB: Final = "jq-metrics-aggregator"

_SERVER: Final[dict[str, MetricType]] = {
    "jq_job_queue_depth": "gauge",  # {queue, state}
    "jq_job_total": "counter",  # {queue, status}
    "jq_queue_paused": "gauge",  # {queue}: 1 while the queue is paused, else 0
    "jq_workers_active": "gauge",
    "jq_grpc_request_duration_seconds": "histogram",  # {method, code}
    "jq_grpc_streams_open": "gauge",  # WatchJob streams open now
    "jq_grpc_streams_dropped_total": "counter",  # streams that read nothing for a while
    "jq_job_submit_to_start_seconds": "histogram",  # {queue}
    "jq_lease_expired_total": "counter",  # {queue}
    "jq_job_retries_total": "counter",  # {queue}
    "jq_dead_letters_total": "counter",  # {queue}
    "jq_outbox_backlog": "gauge",
    "jq_outbox_oldest_age_seconds": "gauge",
    "jq_outbox_relay_enabled": "gauge",  # 0: no Kafka configured, the outbox is only kept
    "jq_outbox_events_pruned_total": "counter",  # deleted by JQ_OUTBOX_RETENTION
    "jq_db_query_duration_seconds": "histogram",  # {operation}
    "jq_store_errors_total": "counter",  # {operation}
    "jq_redis_operation_duration_seconds": "histogram",  # {operation}
    "jq_redis_errors_total": "counter",  # {operation}: failed, or skipped while Redis is down
    "jq_redis_fallback": "gauge",  # 1 while serving without Redis
    "jq_lease_throttled_total": "counter",  # {queue, reason}: leasable jobs a lease held back
    "jq_cap_slots_in_use": "gauge",  # {queue}: running jobs of a capped queue
    "jq_rate_limit_local": "gauge",  # 1 while rates are decided by local buckets
    "jq_status_cache_total": "counter",  # {result}: hit, miss, bypass
    "jq_job_changes_received_total": "counter",  # job changes heard on pub/sub
    "jq_inflight_jobs": "gauge",  # {queue}
    "jq_worker_inflight_jobs": "gauge",  # {worker}
}

_RESULT_PROCESSOR: Final[dict[str, MetricType]] = {
    "jq_kafka_consumer_lag": "gauge",  # {group, topic, partition}
    "jq_results_processed_total": "counter",  # {outcome}
}

# jq_kafka_consumer_lag is exported by every consumer group (label group); the contract
# lists it under the result processor, the first of them.
_METRICS_AGGREGATOR: Final[dict[str, MetricType]] = {
    "jq_cluster_jobs_total": "counter",  # {queue, outcome}
    "jq_cluster_job_submit_to_start_seconds": "histogram",  # {queue}
    "jq_cluster_job_run_seconds": "histogram",  # {queue, outcome}
}

_WORKER: Final[dict[str, MetricType]] = {
    "jq_job_processing_duration_seconds": "histogram",  # {queue, type, outcome}
    "jq_worker_jobs_in_flight": "gauge",
    "jq_worker_capacity": "gauge",
}

METRICS: Final[dict[str, MetricType]] = {
    **_SERVER,
    **_WORKER,
    **_RESULT_PROCESSOR,
    **_METRICS_AGGREGATOR,
}

EXPORTED_BY: Final[dict[str, str]] = {
    **{name: SERVER_JOB for name in _SERVER},
    **{name: WORKER_JOB for name in _WORKER},
    **{name: RESULT_PROCESSOR_JOB for name in _RESULT_PROCESSOR},
    **{name: METRICS_AGGREGATOR_JOB for name in _METRICS_AGGREGATOR},
}

# Label values the contract fixes; other label values are free.
JOB_STATES: Final = frozenset(
    {"waiting", "scheduled", "queued", "running", "succeeded", "dead", "cancelled", "expired"}
)
JOB_STATUSES: Final = frozenset(
    {"submitted", "started", "succeeded", "failed", "retried", "dead", "cancelled", "expired"}
)

# Series a PromQL query may read for each histogram.
HISTOGRAM_SUFFIXES: Final = ("_bucket", "_count", "_sum")


def base_metric_name(series_name: str) -> str:
    """Map a series name to the contract name it belongs to (``x_bucket`` -> ``x``
    for a histogram ``x``); other names are returned unchanged."""
    for suffix in HISTOGRAM_SUFFIXES:
        if series_name.endswith(suffix):
            base = series_name[: -len(suffix)]
            if METRICS.get(base) == "histogram":
                return base
    return series_name
