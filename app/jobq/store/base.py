"""The store's ports: one protocol per repository, and the Store that bundles them.

Every method that changes a job's state is one transaction that also appends the
matching job_events rows (the audit log and the outbox). Adapters raise only errors
from jobq.core.errors; driver errors are translated at their edge.

Tenants: every method a caller's request reaches takes the caller's scope as the keyword
`tenant`. On listings and on jobs and workers named by id it is a `Tenant` scope: a tenant
name confines the query to that tenant (another tenant's row reads as absent), `None`
(ALL_TENANTS) lets it see every tenant. A queue is named by (tenant, name), so calls that
address one queue take a concrete tenant. Which scope a caller gets is decided in one
place, `jobq.server.caller`; the scheduler's maintenance is cross-tenant.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol, overload

from jobq.auth.keys import ApiKey
from jobq.core.limits import LeaseLimits
from jobq.core.model import (
    DEFAULT_TENANT,
    Ended,
    HeartbeatResult,
    Job,
    JobEvent,
    JobFilter,
    LeasedJob,
    LeaseRef,
    NewJob,
    Outcome,
    QueueConfig,
    QueueStats,
    ReleaseResult,
    SubmitResult,
    WorkerInfo,
    WorkerState,
)
from jobq.core.schedules import Advance, Schedule, ScheduleRun
from jobq.core.workflows import Workflow, WorkflowRecord

Tenant = str | None
"""A query's tenant scope: one tenant's rows, or None for every tenant (ALL_TENANTS)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Page:
    jobs: list[Job]
    next_after: str | None  # the id to continue after, None on the last page


@dataclasses.dataclass(frozen=True, slots=True)
class DeadLetterSelector:
    queue: str | None = None
    ids: tuple[str, ...] = ()


class JobRepository(Protocol):
    async def submit(self, jobs: Sequence[NewJob], now: dt.datetime) -> list[SubmitResult]:
        """Insert all or none. A known idempotency key returns the existing job."""
        ...

    async def get(self, job_id: str, *, tenant: Tenant = None) -> Job | None: ...

    async def page(
        self, flt: JobFilter, limit: int, after: str | None, *, tenant: Tenant = None
    ) -> Page:
        """Newest first; `after` is the last id of the previous page. `flt.tenant` narrows
        further; the scope `tenant` is what the caller may see."""
        ...

    async def events(self, job_id: str) -> list[JobEvent]: ...

    async def cancel(
        self, job_id: str, now: dt.datetime, reason: str, *, tenant: Tenant = None
    ) -> Job:
        """Pending: CANCELLED now. Running: cancel requested. Finished: FailedPrecondition.
        Another tenant's job: NotFound."""
        ...

    @overload
    async def lease(
        self,
        worker_id: str,
        queues: Sequence[str],
        max_jobs: int,
        now: dt.datetime,
        task_types: Sequence[str] = (),
        *,
        tenant: Tenant = None,
        limits: LeaseLimits | None = None,
        lean: Literal[False] = False,
    ) -> list[Job]: ...

    @overload
    async def lease(
        self,
        worker_id: str,
        queues: Sequence[str],
        max_jobs: int,
        now: dt.datetime,
        task_types: Sequence[str] = (),
        *,
        tenant: Tenant = None,
        limits: LeaseLimits | None = None,
        lean: Literal[True],
    ) -> list[LeasedJob]: ...

    async def lease(
        self,
        worker_id: str,
        queues: Sequence[str],
        max_jobs: int,
        now: dt.datetime,
        task_types: Sequence[str] = (),
        *,
        tenant: Tenant = None,
        limits: LeaseLimits | None = None,
        lean: bool = False,
    ) -> list[Job] | list[LeasedJob]:
        """Lease from the queues so named in `tenant` (None: in every tenant).

        A queue's concurrency caps are counted by the store itself, exactly; its rates are
        asked of `limits` once for the whole batch (None: rates not applied). ADR 0017.
        `lean`: the leases as `LeasedJob`s (what a worker runs, ADR 0024) instead of whole
        jobs, in the same order, with the same effects.

        The worker-protocol calls below act on leases held by one worker id, which the
        service lets only its registering principal use; their `tenant` is that worker's
        scope, so a job of another tenant is never held, whoever once had the id."""
        ...

    async def heartbeat(
        self, worker_id: str, leases: Sequence[LeaseRef], now: dt.datetime, *, tenant: Tenant = None
    ) -> HeartbeatResult:
        """Extend every lease the worker still holds; report the others in `stale`.

        A lease can go stale at any moment (its outcome was reported, or it was reaped),
        so one stale lease never stops the live ones from being extended.
        """
        ...

    async def report_progress(
        self,
        worker_id: str,
        lease: LeaseRef,
        progress: float,
        message: str,
        now: dt.datetime,
        *,
        tenant: Tenant = None,
    ) -> Job: ...

    @overload
    async def report(
        self, worker_id: str, outcomes: Sequence[Outcome], now: dt.datetime, *,
        tenant: Tenant = None, lean: Literal[False] = False,
    ) -> list[Job]: ...  # fmt: skip

    @overload
    async def report(
        self, worker_id: str, outcomes: Sequence[Outcome], now: dt.datetime, *,
        tenant: Tenant = None, lean: Literal[True],
    ) -> list[Ended]: ...  # fmt: skip

    async def report(
        self,
        worker_id: str,
        outcomes: Sequence[Outcome],
        now: dt.datetime,
        *,
        tenant: Tenant = None,
        lean: bool = False,
    ) -> list[Job] | list[Ended]:
        """Apply completions, failures and cancellations, all or none; the jobs as they now
        are, in the outcomes' order (`lean`: as `Ended`, their id, queue and new state)."""
        ...

    async def release(
        self, worker_id: str, leases: Sequence[LeaseRef], now: dt.datetime, *, tenant: Tenant = None
    ) -> ReleaseResult:
        """Give the held leases back without using up an attempt; report the stale ones."""
        ...

    async def promote_due(self, now: dt.datetime, limit: int) -> int: ...

    async def reap_expired_leases(
        self, now: dt.datetime, limit: int, leader_since: dt.datetime | None = None
    ) -> list[Job]:
        """Retry or dead-letter running jobs whose lease expired.

        With `leader_since`, a queue's leases are reaped only once one lease period has
        passed since then: a new leader (a restart, a failover) gives live workers that
        long to reach it before their work is handed to someone else.
        """
        ...

    async def expire_unstarted(self, now: dt.datetime, limit: int) -> list[str]:
        """Expire pending jobs past expires_at; the queue of each, for metrics."""
        ...

    async def delete_finished(self, now: dt.datetime, limit: int) -> int:
        """Retention: remove finished jobs older than their queue's retention."""
        ...

    async def replay_dead(
        self, selector: DeadLetterSelector, now: dt.datetime, *, tenant: Tenant = None
    ) -> int:
        """`selector.queue` is a queue of `tenant` (of every tenant when None); ids of
        another tenant's jobs are NotFound."""
        ...

    async def discard_dead(
        self, selector: DeadLetterSelector, now: dt.datetime, *, tenant: Tenant = None
    ) -> int: ...


class QueueRepository(Protocol):
    async def create(self, queue: QueueConfig, now: dt.datetime) -> QueueConfig:
        """In `queue.tenant`; AlreadyExists when that tenant has a queue of that name."""
        ...

    async def get(self, name: str, *, tenant: str = DEFAULT_TENANT) -> QueueConfig | None: ...

    async def all(self, *, tenant: Tenant = None) -> list[QueueConfig]:
        """By name, then tenant."""
        ...

    async def update(
        self, name: str, changes: dict[str, Any], now: dt.datetime, *, tenant: str = DEFAULT_TENANT
    ) -> QueueConfig:
        """A queue's name and tenant never change."""
        ...

    async def purge(self, name: str, now: dt.datetime, *, tenant: str = DEFAULT_TENANT) -> int:
        """Cancel every job of the queue that has not started."""
        ...

    async def stats(
        self,
        name: str | None,
        now: dt.datetime,
        *,
        tenant: Tenant = None,
        finished: bool = True,
    ) -> list[QueueStats]:
        """Every queue in scope, or those named `name` (NotFound if none). `finished=False`:
        counts of unfinished states only, a read bounded by the backlog (console, gauges)."""
        ...


class WorkerRepository(Protocol):
    async def register(self, worker: WorkerInfo) -> WorkerInfo:
        """Insert, or update a registration of the same subject. A worker id belongs to the
        subject that registered it until it deregisters (STOPPED): another subject's
        registration of it is AlreadyExists and changes nothing. Rows from before tenancy
        (subject '') may be claimed."""
        ...

    async def get(
        self, worker_id: str, *, tenant: Tenant = None, count_jobs: bool = True
    ) -> WorkerInfo | None:
        """`count_jobs=False`: `in_flight` is left 0, and the jobs table is not read (the
        checks of every worker call need the worker only)."""
        ...

    async def all(
        self, now: dt.datetime, lost_after: dt.timedelta, *, tenant: Tenant = None
    ) -> list[WorkerInfo]: ...

    async def set_state(
        self, worker_id: str, state: WorkerState, *, tenant: Tenant = None
    ) -> WorkerInfo:
        """NotFound for an id unknown in scope."""
        ...


class EventLog(Protocol):
    async def unpublished(self, limit: int) -> list[JobEvent]:
        """The oldest events not yet published, in publication order."""
        ...

    async def mark_published(self, event_ids: Sequence[str], at: dt.datetime) -> None: ...

    async def backlog(self) -> tuple[int, dt.datetime | None]:
        """How many events wait, and when the oldest happened."""
        ...

    async def prune(self, before: dt.datetime, limit: int, *, unpublished: bool) -> int:
        """Delete up to `limit` of the oldest events that happened before `before`; return
        how many. Only published ones unless `unpublished` (no relay will ever send them),
        and never an event of a job still live (not finished), so a job's history stays
        whole while it can still change."""
        ...


class ApiKeyRepository(Protocol):
    """API keys by id (the hash of each secret, never the secret: jobq.auth.keys)."""

    async def create(self, key: ApiKey) -> ApiKey:
        """AlreadyExists if the id is taken."""
        ...

    async def get(self, key_id: str) -> ApiKey | None: ...

    async def all(self, tenant: str | None = None) -> list[ApiKey]: ...

    async def revoke(self, key_id: str, now: dt.datetime) -> ApiKey:
        """NotFound if there is no such key; revoking twice keeps the first time."""
        ...


class ScheduleRepository(Protocol):
    """Schedules by (tenant, name), and the runs each fire time made (ADR 0014)."""

    async def create(self, schedule: Schedule) -> Schedule:
        """In `schedule.tenant`; AlreadyExists when that tenant has a schedule of that name."""
        ...

    async def get(self, name: str, *, tenant: str) -> Schedule | None: ...

    async def all(self, *, tenant: Tenant = None) -> list[Schedule]:
        """By tenant, then name."""
        ...

    async def update(
        self, name: str, changes: dict[str, Any], now: dt.datetime, *, tenant: str
    ) -> Schedule:
        """`changes` by Schedule field name; id, tenant and name never change. NotFound."""
        ...

    async def delete(self, name: str, *, tenant: str) -> None:
        """The schedule and its runs; its jobs stay. NotFound."""
        ...

    async def due(self, now: dt.datetime, limit: int) -> list[Schedule]:
        """Every tenant's unpaused schedules with a fire time at or before `now` or a
        buffered one, earliest first: the leader's maintenance."""
        ...

    async def record(
        self,
        schedule_id: str,
        runs: Sequence[ScheduleRun],
        advance: Advance,
        now: dt.datetime,
    ) -> bool:
        """In one transaction: apply `advance` if the row still holds its expected values,
        add the runs (a run already recorded for the same fire time is kept), append a
        `schedule_fired` event to the outbox for each new submitted run, and keep the
        newest RUNS_KEPT runs. False, and nothing written, if the row had moved on."""
        ...

    async def runs(self, schedule_id: str, limit: int) -> list[ScheduleRun]:
        """Newest fire time first."""
        ...


class WorkflowRepository(Protocol):
    """Workflows (ADR 0016). Readying children and cancelling unreachable ones happens in
    the job repository's own transactions, as the parents end."""

    async def submit(
        self,
        workflow: Workflow,
        jobs: Sequence[NewJob],
        edges: Sequence[tuple[str, str]],
        now: dt.datetime,
    ) -> WorkflowRecord:
        """All or none; `jobs` parents first (their ids ascending), `edges` (parent id,
        child id); a job with parents starts WAITING."""
        ...

    async def get(self, workflow_id: str, *, tenant: Tenant = None) -> WorkflowRecord | None: ...

    async def cancel(
        self, workflow_id: str, now: dt.datetime, reason: str, *, tenant: Tenant = None
    ) -> list[Job]:
        """Every unfinished node cancelled (a running one: cancel requested); NotFound
        outside `tenant`."""
        ...

    async def parent_results(self, job_id: str) -> list[tuple[str, str | None]]:
        """(workflow key, result) of each succeeded parent of a job."""
        ...


class LeaderLock(Protocol):
    """Singleton work (promotion, reaping, expiry, retention) runs only while this is held."""

    async def try_acquire(self) -> bool:
        """True while this process is the leader; called every scheduler tick."""
        ...

    async def release(self) -> None: ...


class AlwaysLeader:
    """For a store only one server process can use (the embedded SQLite file)."""

    async def try_acquire(self) -> bool:
        return True

    async def release(self) -> None:
        return None


class Store(Protocol):
    # Read-only: a plain attribute would be invariant, and no adapter could expose its own
    # repository classes.
    @property
    def jobs(self) -> JobRepository: ...

    @property
    def queues(self) -> QueueRepository: ...

    @property
    def workers(self) -> WorkerRepository: ...

    @property
    def events(self) -> EventLog: ...

    @property
    def api_keys(self) -> ApiKeyRepository: ...

    @property
    def schedules(self) -> ScheduleRepository: ...

    @property
    def workflows(self) -> WorkflowRepository: ...

    @property
    def leader(self) -> LeaderLock: ...

    async def listen(self, on_work: Callable[[], None]) -> None:
        """Call `on_work` whenever another process makes jobs leasable; runs until cancelled."""
        ...

    async def migrate(self) -> None: ...

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise StoreUnavailable when the store cannot serve."""
        ...

    async def migrations_pending(self) -> int: ...
