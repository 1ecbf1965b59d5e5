"""Protobuf messages to the SDK's objects: the core model, with payloads and results
decoded from JSON, and the Submit request built from submit()'s arguments."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

from jobq.core import model
from jobq.core.errors import InvalidArgument
from jobq.v1 import job_pb2, job_service_pb2
from jobq.wire import convert as wire
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
from jobq.worker.task import Task

__all__ = [
    "STATE_TO_PB",
    "DurationLike",
    "Job",
    "apply_change",
    "decode",
    "dur",
    "job_from_pb",
    "job_request",
    "opt_dt",
    "opt_td",
    "queue_from_pb",
    "queue_stats_from_pb",
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


def job_from_pb(job: job_pb2.Job) -> Job:
    core = wire.job_from_pb(job)
    fields = {f.name: getattr(core, f.name) for f in dataclasses.fields(core)}
    return Job(**fields | {"payload": decode(job.payload), "result": decode(job.result)})


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
