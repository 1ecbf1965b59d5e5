"""Protobuf messages to the core model (jobs, queues, workers) and back, for every client of
the server: the SDK, the worker and jq-ctl (through the SDK)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from google.protobuf import duration_pb2, timestamp_pb2

from jobq.core.durations import parse_duration
from jobq.core.model import Job, LeasedJob, QueueConfig, QueueStats, WorkerInfo, WorkerState
from jobq.core.states import JobState
from jobq.v1 import job_pb2, queue_pb2, worker_pb2, worker_service_pb2
from jobq.wire.states import STATE_FROM_PB, WORKER_STATE_FROM_PB
from jobq.wire.times import EPOCH, from_duration, from_timestamp, to_duration, to_timestamp

DurationLike = str | float | int | dt.timedelta


def ts(value: dt.datetime) -> timestamp_pb2.Timestamp:
    return to_timestamp(value)


def opt_dt(message: Any, field: str) -> dt.datetime | None:
    if not message.HasField(field):
        return None
    return from_timestamp(getattr(message, field))


def dur(value: DurationLike) -> duration_pb2.Duration:
    return to_duration(parse_duration(value))


def opt_td(message: Any, field: str) -> dt.timedelta | None:
    if not message.HasField(field):
        return None
    return from_duration(getattr(message, field))


def job_from_pb(job: job_pb2.Job) -> Job:
    epoch = EPOCH
    return Job(
        id=job.id,
        queue=job.queue,
        type=job.type,
        payload=job.payload,
        state=STATE_FROM_PB.get(job.state, JobState.QUEUED),
        priority=job.priority,
        attempt=job.attempt,
        attempt_base=job.attempt_base,
        max_attempts=job.max_attempts,
        run_at=opt_dt(job, "run_at") or epoch,
        created_at=opt_dt(job, "created_at") or epoch,
        updated_at=opt_dt(job, "updated_at") or epoch,
        tenant=job.tenant,
        timeout=opt_td(job, "timeout"),
        expires_at=opt_dt(job, "expires_at"),
        lease_expires_at=opt_dt(job, "lease_expires_at"),
        worker_id=job.worker_id or None,
        idempotency_key=job.idempotency_key or None,
        result=job.result or None,
        last_error=job.last_error or None,
        progress=job.progress,
        progress_message=job.progress_message,
        cancel_requested=job.cancel_requested,
        started_at=opt_dt(job, "started_at"),
        finished_at=opt_dt(job, "finished_at"),
        correlation_id=job.correlation_id,
        trace_context=dict(job.trace_context),
        rate_key=job.rate_key or None,
        concurrency_key=job.concurrency_key or None,
    )


def leased_from_pb(job: worker_service_pb2.LeasedJob) -> LeasedJob:
    return LeasedJob(
        id=job.id,
        queue=job.queue,
        type=job.type,
        payload=job.payload,
        attempt=job.attempt,
        timeout=dt.timedelta(microseconds=job.timeout_us) if job.timeout_us else None,
        correlation_id=job.correlation_id,
        trace_context=dict(job.trace_context),
    )


def queue_from_pb(queue: queue_pb2.Queue) -> QueueConfig:
    return QueueConfig(
        name=queue.name,
        tenant=queue.tenant,
        paused=queue.paused,
        weight=queue.weight,
        max_attempts=queue.max_attempts,
        backoff_base=opt_td(queue, "backoff_base") or dt.timedelta(0),
        backoff_max=opt_td(queue, "backoff_max") or dt.timedelta(0),
        lease_timeout=opt_td(queue, "lease_timeout") or dt.timedelta(0),
        default_ttl=opt_td(queue, "default_ttl"),
        concurrency_limit=queue.concurrency_limit,
        retention=opt_td(queue, "retention") or dt.timedelta(0),
        rate_limit=queue.rate_limit,
        rate_burst=queue.rate_burst,
        key_rate_limit=queue.key_rate_limit,
        key_rate_burst=queue.key_rate_burst,
        key_concurrency_limit=queue.key_concurrency_limit,
    )


def queue_stats_from_pb(stats: queue_pb2.QueueStats) -> QueueStats:
    return QueueStats(
        queue=stats.queue,
        paused=stats.paused,
        by_state=dict(stats.by_state),
        oldest_queued_age_seconds=stats.oldest_queued_age_seconds,
        tenant=stats.tenant,
    )


def worker_from_pb(worker: worker_pb2.Worker) -> WorkerInfo:
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return WorkerInfo(
        id=worker.id,
        hostname=worker.hostname,
        queues=tuple(worker.queues),
        capacity=worker.capacity,
        state=WORKER_STATE_FROM_PB.get(worker.state, WorkerState.LOST),
        started_at=opt_dt(worker, "started_at") or epoch,
        last_heartbeat=opt_dt(worker, "last_heartbeat") or epoch,
        task_types=tuple(worker.task_types),
        in_flight=worker.in_flight,
        tenant=worker.tenant,
        subject=worker.subject,
        task_queues=tuple((r.type, r.queue) for r in worker.task_queues),
    )
