"""What a transition writes, decided once for every backend.

Each function returns the job_events row and the job columns to set, in domain types
(datetimes, not a backend's encoding); adapters only encode and execute.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Sequence
from typing import Any

from jobq.core.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from jobq.core.lifecycle import decide_failure, initial_state
from jobq.core.model import (
    Ended,
    HeldJob,
    Job,
    JobEvent,
    LeasedJob,
    LeaseRef,
    NewJob,
    Outcome,
    OutcomeKind,
    QueueConfig,
    StaleLeaseRef,
    WorkerInfo,
    WorkerState,
)
from jobq.core.retry import Random
from jobq.core.states import (
    PENDING_STATES,
    TERMINAL_STATES,
    EventKind,
    JobState,
    check_transition,
)
from jobq.ids import new_id
from jobq.store.transitions import job_event, transition_event

S, E = JobState, EventKind


@dataclasses.dataclass(frozen=True, slots=True)
class Change:
    event: JobEvent
    fields: dict[str, Any]  # column -> value; always includes "state"


@dataclasses.dataclass(frozen=True, slots=True)
class Move:
    """A transition a set-based statement makes for many jobs at once (lease, promotion,
    expiry): the SQL takes its states from here, and each job's event is checked against
    the lifecycle table when it is built."""

    kind: EventKind
    from_states: tuple[JobState | None, ...]
    to_state: JobState | None

    def __post_init__(self) -> None:
        for before in self.from_states:
            check_transition(before, self.to_state, self.kind)

    def event(
        self, job: Job, at: dt.datetime, *, was: JobState | None = None, **details: Any
    ) -> JobEvent:
        """The event of `job` making this move; `was`: its state before, when `job` is the
        row as the statement left it."""
        before = job.state if was is None else was
        if before not in self.from_states:
            raise ValueError(f"{self.kind.value} does not start from {before}")
        return job_event(job, self.kind, self.to_state, at, from_state=before, **details)


START = Move(E.STARTED, (S.QUEUED,), S.RUNNING)
PROMOTE = Move(E.PROMOTED, (S.SCHEDULED,), S.QUEUED)
EXPIRE = Move(E.EXPIRED, (S.SCHEDULED, S.QUEUED), S.EXPIRED)
RELEASE = Move(E.RELEASED, (S.RUNNING,), S.QUEUED)
REPLAY = Move(E.REPLAYED, (S.DEAD,), S.QUEUED)
DISCARD = Move(E.DISCARDED, (S.DEAD,), None)
PURGE = Move(E.CANCELLED, (S.SCHEDULED, S.QUEUED), S.CANCELLED)
# Workflows (ADR 0016): a node's last parent succeeded (queued, or scheduled while its own
# run_at is ahead); an ancestor will never succeed, so the node never runs.
READY = Move(E.READY, (S.WAITING,), S.QUEUED)
READY_LATER = Move(E.READY, (S.WAITING,), S.SCHEDULED)
UNREACHABLE = Move(E.CANCELLED, (S.WAITING,), S.CANCELLED)

# START's event as column values; the row builder below relies on this being its move.
_STARTED = (START.kind.value, S.QUEUED.value, S.RUNNING.value)
assert START.from_states == (S.QUEUED,) and START.to_state is S.RUNNING


def started_rows(
    leased: Sequence[LeasedJob], at: dt.datetime, worker_id: str
) -> list[dict[str, Any]]:
    """The job_events rows of a lease, as `START.event` builds them for whole jobs (the
    same details, in the same order), straight from the leased rows: a lease of 500 jobs
    built 500 `JobEvent`s and their dicts, a fifth of its time. START was checked against
    the lifecycle table when this module loaded; every row here makes that one move."""
    kind, before, after = _STARTED
    rows = []
    for job in leased:
        details: dict[str, Any] = {}
        if job.correlation_id:
            details["correlation_id"] = job.correlation_id
        if job.trace_context:
            details["trace_context"] = job.trace_context
        if job.workflow_id is not None:
            details["workflow_id"] = job.workflow_id
        assert job.run_at is not None, "a leased row names when it became due"
        details["due_at"] = job.run_at.isoformat()
        details["worker_id"] = worker_id
        rows.append(
            {
                "id": new_id(),
                "job_id": job.id,
                "queue": job.queue,
                "tenant": job.tenant,
                "kind": kind,
                "from_state": before,
                "to_state": after,
                "attempt": job.attempt,
                "at": at,
                "details": details,
            }
        )
    return rows


# What the statements of a store may name as states, for formatting its named queries:
# {queued} in a query is the quoted value of JobState.QUEUED, so no state is spelled twice.
STATE_SQL: dict[str, str] = {state.name.lower(): f"'{state.value}'" for state in JobState} | {
    "pending_states": ", ".join(f"'{s.value}'" for s in sorted(PENDING_STATES)),
    "unfinished_states": ", ".join(f"'{s.value}'" for s in sorted(set(JobState) - TERMINAL_STATES)),
    "worker_lost": f"'{WorkerState.LOST.value}'",
    "worker_active": f"'{WorkerState.ACTIVE.value}'",
    "worker_stopped": f"'{WorkerState.STOPPED.value}'",
}

# The columns a change that ends (or resets) a lease may set; the rest of the row stays.
END_COLUMNS = ("state", "attempt_base", "run_at", "result", "last_error", "progress", "finished_at")


def ended(job: Job, change: Change, now: dt.datetime) -> Job:
    """The job as `change` leaves it, its lease gone: what the store returns, unread."""
    fields = {k: v for k, v in change.fields.items() if k != "state"}
    return dataclasses.replace(
        job,
        **fields,
        state=JobState(change.fields["state"]),
        worker_id=None,
        lease_expires_at=None,
        updated_at=now,
    )


def end_columns(job: Job | HeldJob, change: Change) -> dict[str, Any]:
    """The END_COLUMNS row that `change` writes over `job`, its lease gone: the columns it
    does not set keep the values read."""
    fields = change.fields
    row = {column: fields[column] if column in fields else getattr(job, column)
           for column in END_COLUMNS}  # fmt: skip
    row["id"] = job.id
    return row


def ended_as(job: Job | HeldJob, change: Change) -> Ended:
    return Ended(
        job.id,
        job.queue,
        job.tenant,
        JobState(change.fields["state"]),
        job.workflow_id,
        job.concurrency_key,
    )


def submitted_job(new: NewJob, queue: QueueConfig, now: dt.datetime) -> Job:
    """A new job as it is stored, so that it need not be read back. Its `submitted` event
    is the store's to derive from it (`submitted` here, or the submit's SQL: ADR 0023),
    once `check_submitted` allowed its state."""
    state = JobState.WAITING if new.parents else initial_state(new.run_at, now)
    ttl = new.ttl if new.ttl is not None else queue.default_ttl
    return Job(
        id=new.id,
        queue=new.queue,
        tenant=new.tenant,
        type=new.type,
        payload=new.payload,
        state=state,
        priority=new.priority,
        attempt=0,
        attempt_base=0,
        max_attempts=new.max_attempts or queue.max_attempts,
        run_at=new.run_at,
        timeout=new.timeout,
        expires_at=new.run_at + ttl if ttl else None,
        idempotency_key=new.idempotency_key,
        correlation_id=new.correlation_id,
        trace_context=new.trace_context,
        rate_key=new.rate_key,
        concurrency_key=new.concurrency_key,
        created_at=now,
        updated_at=now,
        workflow_id=new.workflow_id,
        workflow_key=new.workflow_key,
    )


def check_submitted(jobs: Sequence[Job]) -> None:
    """Raise IllegalTransition unless the lifecycle table lets a job be submitted into each
    of `jobs`' states: once per state of a batch, for a store that writes the events in SQL."""
    for state in {job.state for job in jobs}:
        check_transition(None, state, E.SUBMITTED)


def submitted(new: NewJob, queue: QueueConfig, now: dt.datetime) -> tuple[Job, JobEvent]:
    """A new job as it is stored and its first event."""
    job = submitted_job(new, queue, now)
    state = job.state
    event = transition_event(
        job_id=new.id,
        queue=new.queue,
        tenant=new.tenant,
        kind=E.SUBMITTED,
        from_state=None,
        to_state=state,
        attempt=0,
        at=now,
        type=new.type,
        correlation_id=new.correlation_id or None,
        trace_context=new.trace_context or None,
        workflow_id=new.workflow_id,
        workflow_key=new.workflow_key,
    )
    return job, event


def release_change(job: Job, worker_id: str, now: dt.datetime) -> Change:
    """A lease given back: queued again at once, and the attempt does not count."""
    event = RELEASE.event(job, now, worker_id=worker_id)
    return Change(
        event,
        {"state": S.QUEUED.value, "attempt_base": job.attempt_base + 1, "run_at": now},
    )


def replay_change(job: Job, now: dt.datetime) -> Change:
    """A dead job queued again with its full attempt budget; attempt stays monotonic so
    that fencing tokens never repeat."""
    event = REPLAY.event(job, now)
    return Change(
        event,
        {
            "state": S.QUEUED.value,
            "attempt_base": job.attempt,
            "run_at": now,
            "finished_at": None,
            "result": None,
        },
    )


def stale_reason(job: Job | HeldJob | None, worker_id: str, lease: LeaseRef) -> str | None:
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


def no_repeated_jobs(leases: Sequence[LeaseRef]) -> None:
    ids = [lease.job_id for lease in leases]
    if len(set(ids)) != len(ids):
        raise InvalidArgument("leases", "names the same job more than once")


def partition_leases(
    jobs: dict[str, Job], worker_id: str, leases: Sequence[LeaseRef]
) -> tuple[list[Job], tuple[StaleLeaseRef, ...]]:
    """The jobs `worker_id` still holds, and the leases it does not (with why).

    Heartbeats and releases act on the held ones and report the rest: one lease that
    went stale (say its outcome is still in flight) must not stop the others.
    """
    held: list[Job] = []
    stale: list[StaleLeaseRef] = []
    for lease in leases:
        job = jobs.get(lease.job_id)
        why = stale_reason(job, worker_id, lease)
        if why is None and job is not None:
            held.append(job)
        else:
            stale.append(StaleLeaseRef(lease, why or "no such job"))
    return held, tuple(stale)


def outcome_change(
    job: Job | HeldJob, queue: QueueConfig, outcome: Outcome, now: dt.datetime, rng: Random
) -> Change:
    """A worker's report on a running job: success, cancellation, retry or dead letter."""
    if outcome.kind is OutcomeKind.COMPLETED:
        event = job_event(job, E.SUCCEEDED, S.SUCCEEDED, now)
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
        event = job_event(job, E.CANCELLED, S.CANCELLED, now, error=outcome.error)
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
    event = job_event(
        job,
        decision.kind,
        decision.to_state,
        now,
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
    expired = functools.partial(job_event, job, at=now, error=error, worker_id=job.worker_id)
    if job.cancel_requested:
        event = expired(E.CANCELLED, S.CANCELLED)
        return Change(event, {"state": S.CANCELLED.value, "last_error": error, "finished_at": now})
    decision = decide_failure(job, queue, now, retryable=True, lease_expired=True, rng=rng)
    event = expired(decision.kind, decision.to_state)
    if decision.to_state is S.DEAD:
        return Change(event, {"state": S.DEAD.value, "last_error": error, "finished_at": now})
    assert decision.run_at is not None
    return Change(
        event, {"state": S.SCHEDULED.value, "last_error": error, "run_at": decision.run_at}
    )


def batch_duplicate(new: NewJob, index: int, seen: dict[tuple[str, str, str], NewJob]) -> None:
    """Refuse a batch that names one idempotency key twice in a queue (same payload or not).

    `seen` is keyed by (tenant, queue, key): a key is unique within one tenant's queue."""
    key = (new.tenant, new.queue, new.idempotency_key or "")
    if not new.idempotency_key or key not in seen:
        return
    earlier = seen[key]
    if (earlier.type, earlier.payload) != (new.type, new.payload):
        raise AlreadyExists(
            f"jobs[{index}]: idempotency key {new.idempotency_key!r} is used twice in "
            "this batch with different payloads"
        )
    raise InvalidArgument(f"jobs[{index}].idempotency_key", "repeats an earlier job of this batch")


def idempotent_match(existing: Job | None, new: NewJob) -> Job | None:
    """The stored job a submission's idempotency key returns, or AlreadyExists if it differs."""
    if existing is None:
        return None
    if (existing.type, existing.payload) != (new.type, new.payload):
        raise AlreadyExists(
            f"idempotency key {new.idempotency_key!r} in queue {new.queue!r} belongs to "
            f"job {existing.id} with a different type or payload"
        )
    return existing


def checked_dead_letters(
    selector_ids: Sequence[str], queue: str | None, found: dict[str, Job]
) -> list[Job]:
    """The dead jobs a selector of ids names, or the error saying why not."""
    missing = [i for i in selector_ids if i not in found]
    if missing:
        raise NotFound(f"no such job: {', '.join(missing)}")
    not_dead = [j.id for j in found.values() if j.state is not S.DEAD]
    if not_dead:
        raise FailedPrecondition(f"not dead-lettered: {', '.join(not_dead)}")
    if queue and any(j.queue != queue for j in found.values()):
        raise InvalidArgument("selector.ids", f"not all in queue {queue!r}")
    return list(found.values())


def with_liveness(worker: WorkerInfo, now: dt.datetime, lost_after: dt.timedelta) -> WorkerInfo:
    """A worker that stopped heartbeating without saying goodbye is reported as lost."""
    alive = worker.state in (WorkerState.ACTIVE, WorkerState.DRAINING)
    if alive and now - worker.last_heartbeat > lost_after:
        return dataclasses.replace(worker, state=WorkerState.LOST)
    return worker


def cancel_change(job: Job, now: dt.datetime, reason: str) -> Change | None:
    """Cancel a pending job now, or ask a running one's worker to stop (None if already
    asked); a finished job cannot be cancelled."""
    if job.state in PENDING_STATES or job.state is S.WAITING:
        event = job_event(job, E.CANCELLED, S.CANCELLED, now, reason=reason or None)
        return Change(event, {"state": S.CANCELLED.value, "finished_at": now})
    if job.state is S.RUNNING:
        if job.cancel_requested:
            return None
        event = job_event(job, E.CANCEL_REQUESTED, S.RUNNING, now, reason=reason or None)
        return Change(event, {"cancel_requested": True})
    raise FailedPrecondition(f"job {job.id} is already {job.state.value}")
