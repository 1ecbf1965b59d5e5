"""Prometheus metrics. Each process builds its own registry; nothing is global."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from jobq.core.model import Ended, Job, LeasedJob, QueueStats
from jobq.core.states import JobState
from jobq.observability.cluster_gauges import ClusterGauges, snapshot

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
JOB_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600)

_FINISHED_STATUS = {
    JobState.SUCCEEDED: "succeeded",
    JobState.DEAD: "dead",
    JobState.CANCELLED: "cancelled",
    JobState.SCHEDULED: "retried",
}


class ServerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.grpc_duration = Histogram(
            "jq_grpc_request_duration_seconds",
            "gRPC request duration by method and status code",
            ["method", "code"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.job_total = Counter(
            "jq_job_total", "Job transitions by queue and outcome", ["queue", "status"], registry=r
        )
        self.submit_to_start = Histogram(
            "jq_job_submit_to_start_seconds",
            "Time from a job becoming due to its lease",
            ["queue"],
            buckets=JOB_BUCKETS,
            registry=r,
        )
        self.lease_expired_total = Counter(
            "jq_lease_expired_total",
            "Leases that expired without a heartbeat",
            ["queue"],
            registry=r,
        )
        self.retries_total = Counter(
            "jq_job_retries_total", "Failed attempts scheduled for retry", ["queue"], registry=r
        )
        self.dead_letters_total = Counter(
            "jq_dead_letters_total", "Jobs dead-lettered", ["queue"], registry=r
        )
        # Depth, paused queues, active workers, outbox: read from the whole store, so
        # exported by the leader alone (cluster_gauges.py).
        self.cluster = ClusterGauges()
        r.register(self.cluster)
        self.relay_enabled = False
        self.outbox_relay_enabled = Gauge(
            "jq_outbox_relay_enabled",
            "1 when this replica publishes the outbox to Kafka, 0 when Kafka is not configured",
            registry=r,
        )
        self.outbox_pruned = Counter(
            "jq_outbox_events_pruned_total",
            "Job events deleted by outbox retention (JQ_OUTBOX_RETENTION)",
            registry=r,
        )
        self.db_duration = Histogram(
            "jq_db_query_duration_seconds",
            "Store operation duration",
            ["operation"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.leader = Gauge(
            "jq_leader",
            "1 while this replica holds the leader lock for singleton work, else 0",
            registry=r,
        )
        self.store_errors = Counter(
            "jq_store_errors_total", "Store operations that failed", ["operation"], registry=r
        )
        # Every call to Redis (jobq.coord.guard), by the port's operation name; none when the
        # coordinator is in-process. (jq_kafka_consumer_lag: jobq/events/result_processor.py.)
        self.redis_duration = Histogram(
            "jq_redis_operation_duration_seconds",
            "Redis operation duration",
            ["operation"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.redis_errors = Counter(
            "jq_redis_errors_total",
            "Redis calls that failed or were skipped while Redis is down, by operation",
            ["operation"],
            registry=r,
        )
        self.redis_fallback = Gauge(
            "jq_redis_fallback",
            "1 while Redis is unreachable and this replica serves without it, else 0",
            registry=r,
        )
        # Lease-time limits (ADR 0017; jobq.server.dispatch).
        self.lease_throttled = Counter(
            "jq_lease_throttled_total",
            "Leasable jobs a lease did not start, by queue and limit (tenant_cap, queue_cap, "
            "key_cap, rate, key_rate)",
            ["queue", "reason"],
            registry=r,
        )
        self.cap_slots_in_use = Gauge(
            "jq_cap_slots_in_use",
            "Running jobs of a queue with a concurrency cap, as this replica's last lease "
            "counted them",
            ["queue"],
            registry=r,
        )
        self.rate_limit_local = Gauge(
            "jq_rate_limit_local",
            "1 while rate limits are decided by this replica's local buckets (Redis down), else 0",
            registry=r,
        )
        self.status_cache = Counter(
            "jq_status_cache_total",
            "GetJob/WatchJob reads by cache result (hit, miss, bypass: Redis down)",
            ["result"],
            registry=r,
        )
        self.job_changes_received = Counter(
            "jq_job_changes_received_total",
            "Job ids announced changed on pub/sub (by any replica) that reached this one",
            registry=r,
        )
        self.inflight_queue = Gauge(
            "jq_inflight_jobs",
            "Leases held now per queue, from the coordination counters",
            ["queue"],
            registry=r,
        )
        self.inflight_worker = Gauge(
            "jq_worker_inflight_jobs",
            "Leases held now per worker, from the coordination counters",
            ["worker"],
            registry=r,
        )
        # Server streams (WatchJob) open now, and those dropped because nothing read them.
        self.streams_open = Gauge("jq_grpc_streams_open", "Server streams open", registry=r)
        self.streams_dropped = Counter(
            "jq_grpc_streams_dropped",
            "Server streams ended because the client read nothing for JQ_STREAM_SEND_TIMEOUT",
            registry=r,
        )
        # Stays at 0 on SQLite. On PostgreSQL it grows once per (re)connected LISTEN and once
        # per NOTIFY; flat on a replica while others submit means its LISTEN is not working.
        self.store_wakeups = Counter(
            "jq_store_wakeups_total",
            "Long-poll wake-ups from the store's LISTEN (work made leasable elsewhere)",
            registry=r,
        )

    def job_transition(self, queue: str, status: str, count: int = 1) -> None:
        self.job_total.labels(queue, status).inc(count)

    def job_started(self, job: Job, now: dt.datetime) -> None:
        self.jobs_started([job], now)

    def jobs_started(self, jobs: Iterable[Job | LeasedJob], now: dt.datetime) -> None:
        """One lease's jobs: each series' child looked up once per queue, not per job
        (`.labels()` was an eighth of a lease's time)."""
        by_queue: dict[str, list[float]] = {}
        for job in jobs:
            waited = 0.0 if job.run_at is None else (now - job.run_at).total_seconds()
            by_queue.setdefault(job.queue, []).append(waited)
        for queue, waits in by_queue.items():
            self.job_total.labels(queue, "started").inc(len(waits))
            histogram = self.submit_to_start.labels(queue)
            for waited in waits:
                histogram.observe(max(0.0, waited))

    def job_finished(self, job: Job | Ended) -> None:
        self.jobs_finished([job])

    def jobs_finished(self, jobs: Iterable[Job | Ended]) -> None:
        """One report's jobs, counted per (queue, state) and each series incremented once."""
        counts: dict[tuple[str, JobState], int] = {}
        for job in jobs:
            key = (job.queue, job.state)
            counts[key] = counts.get(key, 0) + 1
        for (queue, state), n in counts.items():
            status = _FINISHED_STATUS.get(state)
            if status is None:
                continue
            self.job_total.labels(queue, status).inc(n)
            if state in (JobState.SCHEDULED, JobState.DEAD):
                self.job_total.labels(queue, "failed").inc(n)
            if state is JobState.SCHEDULED:
                self.retries_total.labels(queue).inc(n)
            if state is JobState.DEAD:
                self.dead_letters_total.labels(queue).inc(n)

    def lease_expired(self, job: Job) -> None:
        self.lease_expired_total.labels(job.queue).inc()
        self.job_finished(job)

    def expired(self, queue: str) -> None:
        self.job_transition(queue, "expired")

    def set_relay_enabled(self, enabled: bool) -> None:
        """Whether this server sends the outbox to Kafka; without, no outbox gauge is exported."""
        self.relay_enabled = enabled
        self.outbox_relay_enabled.set(1 if enabled else 0)

    def observe_cluster(
        self,
        stats: list[QueueStats],
        workers_active: int,
        outbox: tuple[int, dt.datetime | None],
        now: dt.datetime,
    ) -> None:
        """Publish the store-wide gauges: only the leader calls this (Scheduler)."""
        self.cluster.publish(
            snapshot(stats, workers_active, outbox if self.relay_enabled else None, now)
        )

    def withdraw_leader_gauges(self) -> None:
        """A replica that is not (or no longer) the leader exports none of what the leader
        alone observes: the store-wide gauges and the in-flight counters. A series left from
        its last spell as leader would stay at its last value, and sum() would count it
        beside the new leader's."""
        self.cluster.withdraw()
        self.inflight_queue.clear()
        self.inflight_worker.clear()
