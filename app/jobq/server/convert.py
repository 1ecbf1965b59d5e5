"""Protobuf messages to domain objects and back. No logic beyond the mapping."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any, Literal

from google.protobuf import duration_pb2, timestamp_pb2

from jobq.core import bounds
from jobq.core.errors import InvalidArgument
from jobq.core.model import (
    Ended,
    Job,
    JobFilter,
    LeasedJob,
    LeaseRef,
    Outcome,
    OutcomeKind,
    QueueConfig,
    QueueStats,
    WorkerInfo,
)
from jobq.core.validation import JobSpec
from jobq.v1 import job_pb2, queue_pb2, worker_pb2, worker_service_pb2
from jobq.wire.states import STATE_FROM_PB, STATE_TO_PB, WORKER_STATE_TO_PB
from jobq.wire.times import set_timestamp, to_duration, to_timestamp

# Job fields only the server sets; a client that sends one is told so.
OUTPUT_ONLY_JOB_FIELDS = (
    "id",
    "state",
    "attempt",
    "lease_expires_at",
    "worker_id",
    "result",
    "last_error",
    "progress",
    "progress_message",
    "cancel_requested",
    "created_at",
    "updated_at",
    "started_at",
    "finished_at",
    "expires_at",
)


def ts(value: dt.datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    return to_timestamp(value)


def from_ts(value: timestamp_pb2.Timestamp, field: str) -> dt.datetime:
    return bounds.timestamp(value.seconds, value.nanos, field)


def dur(value: dt.timedelta | None) -> duration_pb2.Duration | None:
    if value is None:
        return None
    return to_duration(value)


def from_dur(value: duration_pb2.Duration, field: str) -> dt.timedelta:
    """`field` ends in the Duration's name, which picks its maximum in bounds.DURATION_MAX."""
    return bounds.duration(value.seconds, value.nanos, field, field.rpartition(".")[2])


def job_to_pb(job: Job) -> job_pb2.Job:
    # Scalars in the constructor, times written in place: building a dict of every field
    # and a Timestamp per time made this 4x slower, and it runs for every job in a reply.
    message = job_pb2.Job(
        id=job.id,
        queue=job.queue,
        type=job.type,
        payload=job.payload,
        priority=job.priority,
        max_attempts=job.max_attempts,
        idempotency_key=job.idempotency_key or "",
        tenant=job.tenant,
        correlation_id=job.correlation_id,
        trace_context=job.trace_context,
        rate_key=job.rate_key or "",
        concurrency_key=job.concurrency_key or "",
        state=STATE_TO_PB[job.state],
        attempt=job.attempt,
        attempt_base=job.attempt_base,
        worker_id=job.worker_id or "",
        result=job.result or "",
        last_error=job.last_error or "",
        progress=job.progress,
        progress_message=job.progress_message,
        cancel_requested=job.cancel_requested,
    )
    set_timestamp(message.run_at, job.run_at)
    set_timestamp(message.created_at, job.created_at)
    set_timestamp(message.updated_at, job.updated_at)
    if job.lease_expires_at is not None:
        set_timestamp(message.lease_expires_at, job.lease_expires_at)
    if job.started_at is not None:
        set_timestamp(message.started_at, job.started_at)
    if job.finished_at is not None:
        set_timestamp(message.finished_at, job.finished_at)
    if job.expires_at is not None:
        set_timestamp(message.expires_at, job.expires_at)
    if job.timeout is not None:
        message.timeout.CopyFrom(to_duration(job.timeout))
    return message


class Stamps:
    """Datetimes as Timestamp messages, the last one remembered: a batch's new jobs share
    the submit's time (created_at, updated_at, and run_at unless delayed), so it is
    converted once a batch, and each message takes it as a keyword (ADR 0023)."""

    __slots__ = ("_at", "_stamp")

    def __init__(self) -> None:
        self._at: dt.datetime | None = None
        self._stamp = timestamp_pb2.Timestamp()

    def __call__(self, value: dt.datetime) -> timestamp_pb2.Timestamp:
        if value != self._at:
            self._at, self._stamp = value, to_timestamp(value)
        return self._stamp


def submitted_to_pb(job: Job, sent: job_pb2.Job, stamps: Stamps | None = None) -> job_pb2.Job:
    """A new job in a lean SubmitBatch reply: what the server decided, without what it kept
    as `sent` had it (the payload, above all); the SDK merges the two (ADR 0025)."""
    stamp = stamps or Stamps()
    message = job_pb2.Job(
        id=job.id,
        state=STATE_TO_PB[job.state],
        queue=job.queue,
        tenant=job.tenant,
        max_attempts=job.max_attempts,
        correlation_id=job.correlation_id,
        run_at=stamp(job.run_at),
        created_at=stamp(job.created_at),
        updated_at=stamp(job.updated_at),
    )
    # Kept as sent, save the server's defaults ("null" for no payload).
    if job.payload != sent.payload:
        message.payload = job.payload
    if not sent.trace_context:
        message.trace_context.update(job.trace_context)
    if job.expires_at is not None:
        set_timestamp(message.expires_at, job.expires_at)
    if job.timeout is not None:
        message.timeout.CopyFrom(to_duration(job.timeout))
    return message


_MICROSECOND = dt.timedelta(microseconds=1)


def leased_to_pb(job: Job | LeasedJob) -> worker_service_pb2.LeasedJob:
    """What a worker needs of a job it leased (LeaseJobs with `lean`)."""
    return worker_service_pb2.LeasedJob(
        id=job.id,
        queue=job.queue,
        type=job.type,
        payload=job.payload,
        attempt=job.attempt,
        timeout_us=job.timeout // _MICROSECOND if job.timeout else 0,
        correlation_id=job.correlation_id,
        trace_context=job.trace_context,
    )


def ack_to_pb(job: Job | Ended) -> worker_service_pb2.OutcomeAck:
    return worker_service_pb2.OutcomeAck(job_id=job.id, state=STATE_TO_PB[job.state])


_OUTPUT_ONLY = frozenset(OUTPUT_ONLY_JOB_FIELDS)


def spec_from_pb(
    job: job_pb2.Job,
    field: str = "job",
    *,
    correlation_id: str = "",
    trace_context: dict[str, str] | None = None,
) -> JobSpec:
    """`correlation_id` and `trace_context`: the job's where the client set none of its own.

    One pass over the fields that are set (ListFields): a batch of 1,000 jobs paid ~30 us
    a job reading and testing each field by name."""
    present = {descriptor.name: value for descriptor, value in job.ListFields()}
    if not _OUTPUT_ONLY.isdisjoint(present):
        for name in OUTPUT_ONLY_JOB_FIELDS:
            if name in present:
                raise InvalidArgument(
                    f"{field}.{name}", "is set by the server and must be left empty"
                )
    get = present.get
    run_at, delay, timeout, ttl = get("run_at"), get("delay"), get("timeout"), get("ttl")
    context = get("trace_context")
    return JobSpec(
        type=get("type", ""),
        payload=get("payload") or "null",
        queue=get("queue", ""),
        priority=get("priority", 0),
        max_attempts=get("max_attempts", 0),
        run_at=None if run_at is None else from_ts(run_at, f"{field}.run_at"),
        delay=None if delay is None else from_dur(delay, f"{field}.delay"),
        timeout=None if timeout is None else from_dur(timeout, f"{field}.timeout"),
        ttl=None if ttl is None else from_dur(ttl, f"{field}.ttl"),
        idempotency_key=get("idempotency_key", ""),
        tenant=get("tenant", ""),
        rate_key=get("rate_key", ""),
        concurrency_key=get("concurrency_key", ""),
        correlation_id=get("correlation_id") or correlation_id,
        trace_context=dict(context) if context else dict(trace_context or {}),
    )


def queue_to_pb(queue: QueueConfig) -> queue_pb2.Queue:
    return queue_pb2.Queue(
        name=queue.name,
        tenant=queue.tenant,
        paused=queue.paused,
        weight=queue.weight,
        max_attempts=queue.max_attempts,
        backoff_base=dur(queue.backoff_base),
        backoff_max=dur(queue.backoff_max),
        lease_timeout=dur(queue.lease_timeout),
        default_ttl=dur(queue.default_ttl),
        concurrency_limit=queue.concurrency_limit,
        retention=dur(queue.retention),
        rate_limit=queue.rate_limit,
        rate_burst=queue.rate_burst,
        key_rate_limit=queue.key_rate_limit,
        key_rate_burst=queue.key_rate_burst,
        key_concurrency_limit=queue.key_concurrency_limit,
    )


QueueDuration = Literal["backoff_base", "backoff_max", "lease_timeout", "default_ttl", "retention"]
QUEUE_DURATIONS: tuple[QueueDuration, ...] = (
    "backoff_base",
    "backoff_max",
    "lease_timeout",
    "default_ttl",
    "retention",
)
QUEUE_SCALARS = (
    "tenant",
    "paused",
    "weight",
    "max_attempts",
    "concurrency_limit",
    "rate_limit",
    "rate_burst",
    "key_rate_limit",
    "key_rate_burst",
    "key_concurrency_limit",
)


def queue_fields_from_pb(queue: queue_pb2.Queue, names: Iterable[str]) -> dict[str, Any]:
    """The named Queue fields as QueueConfig keyword arguments."""
    out: dict[str, Any] = {}
    for name in names:
        if name in QUEUE_DURATIONS:
            if queue.HasField(name):
                value = from_dur(getattr(queue, name), f"queue.{name}")
                out[name] = None if name == "default_ttl" and not value else value
            elif name == "default_ttl":
                out[name] = None
        elif name in QUEUE_SCALARS:
            out[name] = getattr(queue, name)
        else:
            raise InvalidArgument("update_mask", f"{name!r} is not a Queue field that can change")
    return out


def queue_stats_to_pb(stats: QueueStats) -> queue_pb2.QueueStats:
    return queue_pb2.QueueStats(
        queue=stats.queue,
        paused=stats.paused,
        by_state=stats.by_state,
        oldest_queued_age_seconds=stats.oldest_queued_age_seconds,
        tenant=stats.tenant,
    )


def worker_to_pb(worker: WorkerInfo) -> worker_pb2.Worker:
    return worker_pb2.Worker(
        id=worker.id,
        hostname=worker.hostname,
        queues=list(worker.queues),
        capacity=worker.capacity,
        state=WORKER_STATE_TO_PB[worker.state],
        started_at=ts(worker.started_at),
        last_heartbeat=ts(worker.last_heartbeat),
        in_flight=worker.in_flight,
        task_types=list(worker.task_types),
        tenant=worker.tenant,
        subject=worker.subject,
        task_queues=[worker_pb2.TaskQueue(type=t, queue=q) for t, q in worker.task_queues],
    )


def lease_from_pb(lease: worker_service_pb2.LeaseRef, field: str = "lease") -> LeaseRef:
    if not lease.job_id:
        raise InvalidArgument(f"{field}.job_id", "must not be empty")
    if lease.attempt < 1:
        raise InvalidArgument(f"{field}.attempt", "must be the attempt from the lease (>= 1)")
    return LeaseRef(lease.job_id, lease.attempt)


def outcome_from_pb(outcome: worker_service_pb2.Outcome, field: str) -> Outcome:
    lease = lease_from_pb(outcome.lease, f"{field}.lease")
    kind = outcome.WhichOneof("kind")
    if kind == "completed":
        return Outcome(lease, OutcomeKind.COMPLETED, result=outcome.completed.result or "null")
    if kind == "failed":
        failed = outcome.failed
        return Outcome(
            lease,
            OutcomeKind.FAILED,
            error=failed.error,
            retryable=failed.retryable,
            retry_after=(
                from_dur(failed.retry_after, f"{field}.failed.retry_after")
                if failed.HasField("retry_after")
                else None
            ),
        )
    if kind == "cancelled":
        return Outcome(lease, OutcomeKind.CANCELLED, error="cancelled")
    raise InvalidArgument(f"{field}.kind", "set one of completed, failed, cancelled")


def filter_from_pb(request: Any) -> JobFilter:
    states = []
    for value in request.states:
        if value not in STATE_FROM_PB:
            raise InvalidArgument("states", f"unknown state {value}")
        states.append(STATE_FROM_PB[value])
    return JobFilter(
        queue=request.queue or None,
        states=tuple(states),
        type=request.type or None,
        tenant=request.tenant or None,
        created_after=(
            from_ts(request.created_after, "created_after")
            if request.HasField("created_after")
            else None
        ),
        created_before=(
            from_ts(request.created_before, "created_before")
            if request.HasField("created_before")
            else None
        ),
    )
