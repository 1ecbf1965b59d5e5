"""Plain data: jobs, queues and workers as the core and the stores see them."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from typing import Any

from jobq.core.states import EventKind, JobState

DEFAULT_QUEUE = "default"
DEFAULT_TENANT = "default"


@dataclasses.dataclass(frozen=True, slots=True)
class QueueConfig:
    name: str
    tenant: str = DEFAULT_TENANT
    paused: bool = False
    weight: int = 1
    max_attempts: int = 3
    backoff_base: dt.timedelta = dt.timedelta(seconds=1)
    backoff_max: dt.timedelta = dt.timedelta(hours=1)
    lease_timeout: dt.timedelta = dt.timedelta(seconds=30)
    default_ttl: dt.timedelta | None = None
    concurrency_limit: int = 0  # 0: unlimited
    retention: dt.timedelta = dt.timedelta(days=7)
    # Limits at lease time (ADR 0017); 0 means none. A rate is jobs started per second,
    # its burst how many may start at once after a quiet spell (0: one).
    rate_limit: float = 0.0
    rate_burst: int = 0
    key_rate_limit: float = 0.0  # per rate_key of a job, within this queue
    key_rate_burst: int = 0
    key_concurrency_limit: int = 0  # running jobs per concurrency_key, within this queue

    @property
    def limited(self) -> bool:
        """Whether leasing from this queue must count or ask before it claims."""
        return bool(
            self.rate_limit
            or self.key_rate_limit
            or self.concurrency_limit
            or self.key_concurrency_limit
        )


@dataclasses.dataclass(frozen=True, slots=True)
class NewJob:
    """A validated submission, ready to store. `run_at` and `expires_at` are absolute."""

    id: str
    queue: str
    type: str
    payload: str
    priority: int
    max_attempts: int | None  # None: the queue's default, fixed at insert
    run_at: dt.datetime
    timeout: dt.timedelta | None
    expires_at: dt.datetime | None
    ttl: dt.timedelta | None  # None: the queue's default TTL applies at insert
    idempotency_key: str | None
    tenant: str
    correlation_id: str
    trace_context: dict[str, str]
    # A workflow node (ADR 0016): its workflow, its key there, and how many parents must
    # succeed before it may run (0: a root, due as any job).
    workflow_id: str | None = None
    workflow_key: str | None = None
    parents: int = 0
    rate_key: str | None = None
    concurrency_key: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Job:
    id: str
    queue: str
    type: str
    payload: str
    state: JobState
    priority: int
    attempt: int
    attempt_base: int  # attempts before this value don't count against max_attempts
    max_attempts: int
    run_at: dt.datetime
    created_at: dt.datetime
    updated_at: dt.datetime
    tenant: str = DEFAULT_TENANT
    timeout: dt.timedelta | None = None
    expires_at: dt.datetime | None = None
    lease_expires_at: dt.datetime | None = None
    worker_id: str | None = None
    idempotency_key: str | None = None
    result: str | None = None
    last_error: str | None = None
    progress: float = 0.0
    progress_message: str = ""
    cancel_requested: bool = False
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    correlation_id: str = ""
    trace_context: dict[str, str] = dataclasses.field(default_factory=dict)
    workflow_id: str | None = None  # the workflow this job is a node of (ADR 0016)
    workflow_key: str | None = None  # its key in that workflow, as the client named it
    rate_key: str | None = None
    concurrency_key: str | None = None

    @property
    def attempts_used(self) -> int:
        return self.attempt - self.attempt_base


@dataclasses.dataclass(frozen=True, slots=True)
class LeasedJob:
    """A leased job as a worker runs it: what the task, its context and the reports read.

    The whole `Job` carries seven times and a dozen fields no worker looks at; building and
    sending them for every leased job cost the server a fifth of its time (ADR 0018), and
    building it from the leased row another tenth (ADR 0024): the store's lean lease
    returns these instead."""

    id: str
    queue: str
    type: str
    payload: str
    attempt: int
    timeout: dt.timedelta | None = None
    correlation_id: str = ""
    trace_context: dict[str, str] = dataclasses.field(default_factory=dict)
    # What the server reads of a lease it grants (its order, metrics, the start event,
    # coordination) and the wire does not carry to the worker: unset on the worker's side.
    tenant: str = DEFAULT_TENANT
    priority: int = 0
    run_at: dt.datetime | None = None
    lease_expires_at: dt.datetime | None = None
    workflow_id: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class HeldJob:
    """A running job as an outcome report reads it, locked: what the fencing check, the
    retry decision, the event and the columns the end of a lease rewrites need. Not the
    payload, type, or a dozen more that no outcome looks at (ADR 0024)."""

    id: str
    queue: str
    tenant: str
    state: JobState
    attempt: int
    attempt_base: int
    max_attempts: int
    run_at: dt.datetime
    worker_id: str | None
    cancel_requested: bool
    result: str | None
    last_error: str | None
    progress: float
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    correlation_id: str
    trace_context: dict[str, str]
    workflow_id: str | None
    concurrency_key: str | None

    @property
    def attempts_used(self) -> int:
        return self.attempt - self.attempt_base


@dataclasses.dataclass(frozen=True, slots=True)
class Ended:
    """A job whose lease an outcome ended, as the service and the worker need it next: its
    new state, and what metrics, workflows and concurrency slots are keyed by."""

    id: str
    queue: str
    tenant: str
    state: JobState
    workflow_id: str | None = None
    concurrency_key: str | None = None


class WorkerState(enum.StrEnum):
    ACTIVE = "active"
    DRAINING = "draining"
    STOPPED = "stopped"
    LOST = "lost"


@dataclasses.dataclass(frozen=True, slots=True)
class WorkerInfo:
    id: str
    hostname: str
    queues: tuple[str, ...]
    capacity: int
    state: WorkerState
    started_at: dt.datetime
    last_heartbeat: dt.datetime
    task_types: tuple[str, ...] = ()
    in_flight: int = 0
    tenant: str = DEFAULT_TENANT  # the tenant whose jobs it leases; "*": every tenant
    subject: str = ""  # the principal that registered it: only that one may act as it
    # (task type, queue) for each type it serves on a known queue: where a submit by type goes
    task_queues: tuple[tuple[str, str], ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class LeaseRef:
    job_id: str
    attempt: int


class OutcomeKind(enum.StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """What a worker reports about one lease."""

    lease: LeaseRef
    kind: OutcomeKind
    result: str | None = None
    error: str | None = None
    retryable: bool = True
    retry_after: dt.timedelta | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class JobEvent:
    """One row of job_events: the audit log and the outbox."""

    id: str
    job_id: str
    kind: EventKind
    from_state: JobState | None
    to_state: JobState | None
    attempt: int
    at: dt.datetime
    details: dict[str, Any]
    queue: str = ""
    tenant: str = DEFAULT_TENANT
    published_at: dt.datetime | None = None
    # The outbox's publication order, assigned by the store on insert (0 until then).
    seq: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class JobFilter:
    queue: str | None = None
    states: tuple[JobState, ...] = ()
    type: str | None = None
    tenant: str | None = None
    created_after: dt.datetime | None = None
    created_before: dt.datetime | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class SubmitResult:
    job: Job
    created: bool


@dataclasses.dataclass(frozen=True, slots=True)
class StaleLeaseRef:
    """A lease a worker named but no longer holds, and why (the fencing check's answer)."""

    lease: LeaseRef
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class HeartbeatResult:
    cancel_job_ids: tuple[str, ...]
    drain: bool
    lease_expires_at: dt.datetime | None
    # Leases not extended because they are no longer the worker's; every other one was.
    stale: tuple[StaleLeaseRef, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class ReleaseResult:
    released: int
    stale: tuple[StaleLeaseRef, ...] = ()  # named but not held: nothing to give back


@dataclasses.dataclass(frozen=True, slots=True)
class QueueStats:
    queue: str
    paused: bool
    by_state: dict[str, int]
    oldest_queued_age_seconds: float
    tenant: str = DEFAULT_TENANT
