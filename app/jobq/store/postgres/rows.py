"""PostgreSQL rows to domain objects."""

from __future__ import annotations

import datetime as dt
from typing import Any

from jobq.auth.keys import ApiKey
from jobq.auth.principal import Role
from jobq.core.model import HeldJob, Job, JobEvent, LeasedJob, QueueConfig, WorkerInfo, WorkerState
from jobq.core.states import EventKind, JobState

Row = dict[str, Any]

QUEUE_COLUMNS = (
    "name",
    "tenant",
    "paused",
    "weight",
    "max_attempts",
    "backoff_base",
    "backoff_max",
    "lease_timeout",
    "default_ttl",
    "concurrency_limit",
    "retention",
    "rate_limit",
    "rate_burst",
    "key_rate_limit",
    "key_rate_burst",
    "key_concurrency_limit",
)


def job_from_row(row: Row) -> Job:
    timeout: dt.timedelta | None = row["timeout"]
    return Job(
        id=str(row["id"]),
        queue=row["queue"],
        tenant=row["tenant"],
        type=row["type"],
        payload=row["payload"],
        state=JobState(row["state"]),
        priority=row["priority"],
        attempt=row["attempt"],
        attempt_base=row["attempt_base"],
        max_attempts=row["max_attempts"],
        run_at=row["run_at"],
        timeout=timeout,
        expires_at=row["expires_at"],
        lease_expires_at=row["lease_expires_at"],
        worker_id=row["worker_id"],
        idempotency_key=row["idempotency_key"],
        result=row["result"],
        last_error=row["last_error"],
        progress=row["progress"],
        progress_message=row["progress_message"],
        cancel_requested=row["cancel_requested"],
        correlation_id=row["correlation_id"],
        trace_context=row["trace_context"] or {},
        rate_key=row["rate_key"],
        concurrency_key=row["concurrency_key"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        workflow_id=None if row["workflow_id"] is None else str(row["workflow_id"]),
        workflow_key=row["workflow_key"],
    )


def held_from_row(row: Row) -> HeldJob:
    """A row of `queries.HELD_LOCKED`."""
    return HeldJob(
        row["id"],
        row["queue"],
        row["tenant"],
        JobState(row["state"]),
        row["attempt"],
        row["attempt_base"],
        row["max_attempts"],
        row["run_at"],
        row["worker_id"],
        row["cancel_requested"],
        row["result"],
        row["last_error"],
        row["progress"],
        row["started_at"],
        row["finished_at"],
        row["correlation_id"],
        row["trace_context"] or {},
        row["workflow_id"],
        row["concurrency_key"],
    )


def leased_from_row(row: Row, lease_expires_at: dt.datetime) -> LeasedJob:
    """A row of `queries.LEASED`; the lease's expiry is the statement's parameter."""
    return LeasedJob(
        row["id"],
        row["queue"],
        row["type"],
        row["payload"],
        row["attempt"],
        row["timeout"],
        row["correlation_id"],
        row["trace_context"] or {},
        row["tenant"],
        row["priority"],
        row["run_at"],
        lease_expires_at,
        row["workflow_id"],
    )


def queue_from_row(row: Row) -> QueueConfig:
    return QueueConfig(**{column: row[column] for column in QUEUE_COLUMNS})


def worker_from_row(row: Row) -> WorkerInfo:
    return WorkerInfo(
        id=row["id"],
        hostname=row["hostname"],
        queues=tuple(row["queues"]),
        task_types=tuple(row["task_types"]),
        task_queues=tuple(sorted(row["task_queues"].items())),
        capacity=row["capacity"],
        state=WorkerState(row["state"]),
        started_at=row["started_at"],
        last_heartbeat=row["last_heartbeat"],
        in_flight=row.get("in_flight", 0),
        tenant=row["tenant"],
        subject=row["subject"],
    )


def event_from_row(row: Row) -> JobEvent:
    return JobEvent(
        id=str(row["id"]),
        job_id=str(row["job_id"]),
        queue=row["queue"],
        tenant=row["tenant"],
        kind=EventKind(row["kind"]),
        from_state=JobState(row["from_state"]) if row["from_state"] else None,
        to_state=JobState(row["to_state"]) if row["to_state"] else None,
        attempt=row["attempt"],
        at=row["at"],
        details=row["details"] or {},
        published_at=row["published_at"],
        seq=row["seq"],
    )


def api_key_from_row(row: dict[str, Any]) -> ApiKey:
    return ApiKey(
        id=row["id"],
        secret_sha256=row["secret_sha256"],
        tenant=row["tenant"],
        roles=frozenset(Role(r) for r in row["roles"]),
        queues=None if row["queues"] is None else frozenset(row["queues"]),
        description=row["description"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
    )
