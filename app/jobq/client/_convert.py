"""Protobuf messages to the SDK's objects: the core model, with payloads and results
decoded from JSON, and the Submit request built from submit()'s arguments."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

from google.protobuf import timestamp_pb2

from jobq.core import model
from jobq.core.errors import InvalidArgument
from jobq.core.states import JobState
from jobq.v1 import job_pb2, job_service_pb2
from jobq.wire.convert import (
    DurationLike,
    dur,
    opt_dt,
    opt_td,
    queue_from_pb,
    queue_stats_from_pb,
    ts,
    worker_from_pb,
)
from jobq.wire.states import STATE_FROM_PB, STATE_TO_PB
from jobq.wire.times import EPOCH, from_duration, from_timestamp
from jobq.worker.task import Task

__all__ = [
    "STATE_TO_PB",
    "DurationLike",
    "Job",
    "Times",
    "apply_change",
    "decode",
    "dur",
    "job_from_pb",
    "job_request",
    "opt_dt",
    "opt_td",
    "queue_from_pb",
    "queue_stats_from_pb",
    "submitted_from_pb",
    "worker_from_pb",
]


@dataclasses.dataclass(frozen=True, slots=True)
class Job(model.Job):
    """A job as the SDK returns it: `payload` and `result` are the Python values their JSON
    holds (None where there is none), not the JSON text the server stores."""

    payload: Any
    result: Any = None


def decode(text: str) -> Any:
    """The value of a JSON text the server holds; a text that is no JSON (never written by
    jobq) is returned as it is rather than hidden behind an error."""
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def encode_payload(payload: Any) -> str:
    try:
        return json.dumps(payload, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument("payload", f"cannot be sent as JSON: {exc}") from None


class Times:
    """Timestamps to datetimes, the last one remembered. A SubmitBatch reply's jobs share
    the server's `now` (created_at, updated_at, and run_at unless delayed): converting it
    once a batch rather than three times a job (ADR 0023)."""

    __slots__ = ("_datetime", "_nanos", "_seconds")

    def __init__(self) -> None:
        self._seconds, self._nanos, self._datetime = 0, -1, EPOCH

    def __call__(self, value: timestamp_pb2.Timestamp) -> dt.datetime:
        seconds, nanos = value.seconds, value.nanos
        if seconds != self._seconds or nanos != self._nanos:
            self._seconds, self._nanos = seconds, nanos
            self._datetime = from_timestamp(value)
        return self._datetime

    def opt(self, message: Any, field: str) -> dt.datetime | None:
        return self(getattr(message, field)) if message.HasField(field) else None


def job_from_pb(job: job_pb2.Job, times: Times | None = None) -> Job:
    """The SDK's Job of a Job message, built at once (not from the core Job: a second
    dataclass of 30 fields per job was a third of submit_many's CPU)."""
    at = times or Times()
    return Job(
        id=job.id,
        queue=job.queue,
        type=job.type,
        payload=decode(job.payload),
        state=STATE_FROM_PB.get(job.state, JobState.QUEUED),
        priority=job.priority,
        attempt=job.attempt,
        attempt_base=job.attempt_base,
        max_attempts=job.max_attempts,
        run_at=at.opt(job, "run_at") or EPOCH,
        created_at=at.opt(job, "created_at") or EPOCH,
        updated_at=at.opt(job, "updated_at") or EPOCH,
        tenant=job.tenant,
        timeout=opt_td(job, "timeout"),
        expires_at=at.opt(job, "expires_at"),
        lease_expires_at=at.opt(job, "lease_expires_at"),
        worker_id=job.worker_id or None,
        idempotency_key=job.idempotency_key or None,
        result=decode(job.result),
        last_error=job.last_error or None,
        progress=job.progress,
        progress_message=job.progress_message,
        cancel_requested=job.cancel_requested,
        started_at=at.opt(job, "started_at"),
        finished_at=at.opt(job, "finished_at"),
        correlation_id=job.correlation_id,
        trace_context=dict(job.trace_context),
        rate_key=job.rate_key or None,
        concurrency_key=job.concurrency_key or None,
    )


def submitted_from_pb(sent: job_pb2.Job, reply: job_pb2.Job, times: Times) -> Job:
    """A new job of a lean SubmitBatch reply, completed from the request's `sent` (ADR
    0025): what `job_from_pb` makes of `sent` with its timeout cleared and `reply` merged
    in (a field set in `reply` wins), without building that merged message. A whole reply
    (a server that predates `lean`) comes out as it was.

    The set fields of each are read in one call (`ListFields`), not ~45 fields by name;
    `sent` is a submit's request (`job_request`), which sets no timestamp but run_at."""
    got = {fd.name: value for fd, value in sent.ListFields()}
    got.pop("timeout", None)
    context = got.get("trace_context")
    got.update({fd.name: value for fd, value in reply.ListFields()})
    get = got.get
    if context:
        context = dict(context) | dict(get("trace_context", {}))
    else:
        context = dict(get("trace_context", {}))
    run_at, created, updated = get("run_at"), get("created_at"), get("updated_at")
    expires, lease_expires = get("expires_at"), get("lease_expires_at")
    started, finished, timeout = get("started_at"), get("finished_at"), get("timeout")
    return Job(
        id=get("id", ""),
        queue=get("queue", ""),
        type=get("type", ""),
        payload=decode(get("payload", "")),
        state=STATE_FROM_PB.get(get("state", 0), JobState.QUEUED),
        priority=get("priority", 0),
        attempt=get("attempt", 0),
        attempt_base=get("attempt_base", 0),
        max_attempts=get("max_attempts", 0),
        run_at=EPOCH if run_at is None else times(run_at),
        created_at=EPOCH if created is None else times(created),
        updated_at=EPOCH if updated is None else times(updated),
        tenant=get("tenant", ""),
        timeout=None if timeout is None else from_duration(timeout),
        expires_at=None if expires is None else times(expires),
        lease_expires_at=None if lease_expires is None else times(lease_expires),
        worker_id=get("worker_id") or None,
        idempotency_key=get("idempotency_key") or None,
        result=decode(get("result", "")),
        last_error=get("last_error") or None,
        progress=get("progress", 0.0),
        progress_message=get("progress_message", ""),
        cancel_requested=get("cancel_requested", False),
        started_at=None if started is None else times(started),
        finished_at=None if finished is None else times(finished),
        correlation_id=get("correlation_id", ""),
        trace_context=context,
        rate_key=get("rate_key") or None,
        concurrency_key=get("concurrency_key") or None,
    )


def apply_change(job: Job, change: job_service_pb2.JobChange) -> Job:
    """`job` with the fields a WatchJob update carries as they are now."""
    fields: dict[str, Any] = {
        "state": STATE_FROM_PB.get(change.state, job.state),
        "attempt": change.attempt,
        "progress": change.progress,
        "progress_message": change.progress_message,
        "cancel_requested": change.cancel_requested,
        "worker_id": change.worker_id or None,
        "lease_expires_at": opt_dt(change, "lease_expires_at"),
        "updated_at": opt_dt(change, "updated_at") or job.updated_at,
        "started_at": opt_dt(change, "started_at"),
        "finished_at": opt_dt(change, "finished_at"),
    }
    if change.HasField("result"):
        fields["result"] = decode(change.result)
    if change.HasField("last_error"):
        fields["last_error"] = change.last_error or None
    return dataclasses.replace(job, **fields)


def job_request(
    type: str | Task,
    payload: Any = None,
    *,
    queue: str = "",
    priority: int = 0,
    max_attempts: int = 0,
    delay: DurationLike | None = None,
    run_at: dt.datetime | None = None,
    timeout: DurationLike | None = None,
    ttl: DurationLike | None = None,
    idempotency_key: str = "",
    tenant: str = "",
    payload_json: str | None = None,
    rate_key: str = "",
    concurrency_key: str = "",
) -> job_pb2.Job:
    """A Job message for Submit; `payload` is any JSON-serialisable value.

    `type` may be the @task itself: its name, and its queue and max_attempts unless given
    here. (Its timeout is applied by the worker that runs it.)
    """
    if isinstance(type, Task):
        queue = queue or type.queue
        max_attempts = max_attempts or type.max_attempts
        type = type.name
    fields: dict[str, Any] = {
        "type": type,
        "payload": payload_json if payload_json is not None else encode_payload(payload),
        "queue": queue,
        "priority": priority,
        "max_attempts": max_attempts,
        "idempotency_key": idempotency_key,
        "tenant": tenant,
        "rate_key": rate_key,
        "concurrency_key": concurrency_key,
    }
    if delay is not None:
        fields["delay"] = dur(delay)
    if run_at is not None:
        fields["run_at"] = ts(run_at)
    if timeout is not None:
        fields["timeout"] = dur(timeout)
    if ttl is not None:
        fields["ttl"] = dur(ttl)
    return job_pb2.Job(**fields)
