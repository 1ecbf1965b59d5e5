"""SQLite rows to domain objects and back."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3

from jobq.auth.keys import ApiKey
from jobq.auth.principal import Role
from jobq.core.model import HeldJob, Job, JobEvent, LeasedJob, QueueConfig, WorkerInfo, WorkerState
from jobq.core.states import EventKind, JobState
from jobq.store.sqlite.db import (
    MICRO,
    from_us,
    opt_from_us,
    opt_span,
)


def job_from_row(row: sqlite3.Row) -> Job:
    return Job(
        id=row["id"],
        queue=row["queue"],
        tenant=row["tenant"],
        type=row["type"],
        payload=row["payload"],
        state=JobState(row["state"]),
        priority=row["priority"],
        attempt=row["attempt"],
        attempt_base=row["attempt_base"],
        max_attempts=row["max_attempts"],
        run_at=from_us(row["run_at"]),
        timeout=opt_span(row["timeout_us"]),
        expires_at=opt_from_us(row["expires_at"]),
        lease_expires_at=opt_from_us(row["lease_expires_at"]),
        worker_id=row["worker_id"],
        idempotency_key=row["idempotency_key"],
        result=row["result"],
        last_error=row["last_error"],
        progress=row["progress"],
        progress_message=row["progress_message"],
        cancel_requested=bool(row["cancel_requested"]),
        correlation_id=row["correlation_id"],
        trace_context=json.loads(row["trace_context"]),
        rate_key=row["rate_key"],
        concurrency_key=row["concurrency_key"],
        created_at=from_us(row["created_at"]),
        updated_at=from_us(row["updated_at"]),
        started_at=opt_from_us(row["started_at"]),
        finished_at=opt_from_us(row["finished_at"]),
        workflow_id=row["workflow_id"],
        workflow_key=row["workflow_key"],
    )


def held_from_row(row: sqlite3.Row) -> HeldJob:
    """A row of `queries.HELD_LOCKED`."""
    return HeldJob(
        row["id"],
        row["queue"],
        row["tenant"],
        JobState(row["state"]),
        row["attempt"],
        row["attempt_base"],
        row["max_attempts"],
        from_us(row["run_at"]),
        row["worker_id"],
        bool(row["cancel_requested"]),
        row["result"],
        row["last_error"],
        row["progress"],
        opt_from_us(row["started_at"]),
        opt_from_us(row["finished_at"]),
        row["correlation_id"],
        json.loads(row["trace_context"]),
        row["workflow_id"],
        row["concurrency_key"],
    )


def leased_from_row(row: sqlite3.Row, lease_expires_at: dt.datetime) -> LeasedJob:
    """A row of `queries.LEASED`; the lease's expiry is the statement's parameter."""
    return LeasedJob(
        row["id"],
        row["queue"],
        row["type"],
        row["payload"],
        row["attempt"],
        opt_span(row["timeout_us"]),
        row["correlation_id"],
        json.loads(row["trace_context"]),
        row["tenant"],
        row["priority"],
        from_us(row["run_at"]),
        lease_expires_at,
        row["workflow_id"],
    )


def queue_from_row(row: sqlite3.Row) -> QueueConfig:
    return QueueConfig(
        name=row["name"],
        tenant=row["tenant"],
        paused=bool(row["paused"]),
        weight=row["weight"],
        max_attempts=row["max_attempts"],
        backoff_base=from_span(row["backoff_base_us"]),
        backoff_max=from_span(row["backoff_max_us"]),
        lease_timeout=from_span(row["lease_timeout_us"]),
        default_ttl=opt_span(row["default_ttl_us"]),
        concurrency_limit=row["concurrency_limit"],
        retention=from_span(row["retention_us"]),
        rate_limit=row["rate_limit"],
        rate_burst=row["rate_burst"],
        key_rate_limit=row["key_rate_limit"],
        key_rate_burst=row["key_rate_burst"],
        key_concurrency_limit=row["key_concurrency_limit"],
    )


def from_span(value: int) -> dt.timedelta:
    return value * MICRO


def worker_from_row(row: sqlite3.Row) -> WorkerInfo:
    return WorkerInfo(
        id=row["id"],
        hostname=row["hostname"],
        queues=tuple(json.loads(row["queues"])),
        task_types=tuple(json.loads(row["task_types"])),
        task_queues=tuple(sorted(json.loads(row["task_queues"]).items())),
        capacity=row["capacity"],
        state=WorkerState(row["state"]),
        started_at=from_us(row["started_at"]),
        last_heartbeat=from_us(row["last_heartbeat"]),
        in_flight=row["in_flight"] if "in_flight" in row.keys() else 0,  # noqa: SIM118
        tenant=row["tenant"],
        subject=row["subject"],
    )


def event_from_row(row: sqlite3.Row) -> JobEvent:
    return JobEvent(
        id=row["id"],
        job_id=row["job_id"],
        queue=row["queue"],
        tenant=row["tenant"],
        kind=EventKind(row["kind"]),
        from_state=JobState(row["from_state"]) if row["from_state"] else None,
        to_state=JobState(row["to_state"]) if row["to_state"] else None,
        attempt=row["attempt"],
        at=from_us(row["at"]),
        details=json.loads(row["details"]),
        published_at=opt_from_us(row["published_at"]),
        seq=row["seq"],
    )


def api_key_from_row(row: sqlite3.Row) -> ApiKey:
    return ApiKey(
        id=row["id"],
        secret_sha256=row["secret_sha256"],
        tenant=row["tenant"],
        roles=frozenset(Role(r) for r in json.loads(row["roles"])),
        queues=None if row["queues"] is None else frozenset(json.loads(row["queues"])),
        description=row["description"],
        created_at=from_us(row["created_at"]),
        expires_at=opt_from_us(row["expires_at"]),
        revoked_at=opt_from_us(row["revoked_at"]),
    )
