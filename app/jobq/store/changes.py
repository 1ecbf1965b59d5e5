"""What a transition writes, decided once for every backend.

Each function returns the job_events row and the job columns to set, in domain types
(datetimes, not a backend's encoding); adapters only encode and execute.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any

from jobq.core.lifecycle import decide_failure
from jobq.core.model import Job, JobEvent, LeaseRef, Outcome, OutcomeKind, QueueConfig
from jobq.core.retry import Random
from jobq.core.states import EventKind, JobState
from jobq.store.transitions import transition_event

S, E = JobState, EventKind


@dataclasses.dataclass(frozen=True, slots=True)
class Change:
    event: JobEvent
    fields: dict[str, Any]  # column -> value; always includes "state"


def group_by_columns(changes: Sequence[Change]) -> dict[tuple[str, ...], list[Change]]:
    """Changes that set the same columns, together: each group is one batched UPDATE."""
    groups: dict[tuple[str, ...], list[Change]] = {}
    for change in changes:
        groups.setdefault(tuple(change.fields), []).append(change)
    return groups


def stale_reason(job: Job | None, worker_id: str, lease: LeaseRef) -> str | None:
    """Why `worker_id` does not hold `lease` (the fencing check), or None when it does."""
    if job is None:
        return "no such job"
    if job.state is not S.RUNNING:
        return f"job is {job.state.value}, not running"
    if job.attempt != lease.attempt:
        return f"attempt {lease.attempt} is stale, the current attempt is {job.attempt}"
    if job.worker_id != worker_id:
        return f"leased by another worker ({job.worker_id})"
    return None


def outcome_change(
    job: Job, queue: QueueConfig, outcome: Outcome, now: dt.datetime, rng: Random
) -> Change:
    """A worker's report on a running job: success, cancellation, retry or dead letter."""
    base: dict[str, Any] = {
        "job_id": job.id,
        "queue": job.queue,
        "from_state": S.RUNNING,
        "attempt": job.attempt,
        "at": now,
        "correlation_id": job.correlation_id or None,
    }
    if outcome.kind is OutcomeKind.COMPLETED:
        event = transition_event(**base, kind=E.SUCCEEDED, to_state=S.SUCCEEDED)
        return Change(
            event,
            {
                "state": S.SUCCEEDED.value,
                "result": outcome.result,
                "finished_at": now,
                "progress": 1.0,
            },
        )
    if outcome.kind is OutcomeKind.CANCELLED or job.cancel_requested:
        event = transition_event(
            **base, kind=E.CANCELLED, to_state=S.CANCELLED, error=outcome.error
        )
        return Change(
            event,
            {
                "state": S.CANCELLED.value,
                "finished_at": now,
                "last_error": outcome.error or job.last_error,
            },
        )
    decision = decide_failure(
        job, queue, now, retryable=outcome.retryable, retry_after=outcome.retry_after, rng=rng
    )
    event = transition_event(
        **base,
        kind=decision.kind,
        to_state=decision.to_state,
        error=outcome.error,
        retryable=outcome.retryable,
    )
    if decision.to_state is S.DEAD:
        return Change(
            event, {"state": S.DEAD.value, "last_error": outcome.error, "finished_at": now}
        )
    assert decision.run_at is not None
    return Change(
        event, {"state": S.SCHEDULED.value, "last_error": outcome.error, "run_at": decision.run_at}
    )


def lease_expiry_change(job: Job, queue: QueueConfig, now: dt.datetime, rng: Random) -> Change:
    """A running job whose lease ran out: cancelled if that was asked, else retried or dead."""
    error = f"lease expired: worker {job.worker_id} stopped heartbeating"
    base: dict[str, Any] = {
        "job_id": job.id,
        "queue": job.queue,
        "from_state": S.RUNNING,
        "attempt": job.attempt,
        "at": now,
        "error": error,
        "worker_id": job.worker_id,
        "correlation_id": job.correlation_id or None,
    }
    if job.cancel_requested:
        event = transition_event(**base, kind=E.CANCELLED, to_state=S.CANCELLED)
        return Change(event, {"state": S.CANCELLED.value, "last_error": error, "finished_at": now})
    decision = decide_failure(job, queue, now, retryable=True, lease_expired=True, rng=rng)
    event = transition_event(**base, kind=decision.kind, to_state=decision.to_state)
    if decision.to_state is S.DEAD:
        return Change(event, {"state": S.DEAD.value, "last_error": error, "finished_at": now})
    assert decision.run_at is not None
    return Change(
        event, {"state": S.SCHEDULED.value, "last_error": error, "run_at": decision.run_at}
    )
