"""The store's ports: one protocol per repository, and the Store that bundles them.

Every method that changes a job's state is one transaction that also appends the
matching job_events rows (the audit log and the outbox). Adapters raise only errors
from jobq.core.errors; driver errors are translated at their edge.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from jobq.auth.keys import ApiKey
from jobq.core.model import (
    HeartbeatResult,
    Job,
    JobEvent,
    JobFilter,
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

    async def get(self, job_id: str) -> Job | None: ...

    async def page(self, flt: JobFilter, limit: int, after: str | None) -> Page:
        """Newest first; `after` is the last id of the previous page."""
        ...

    async def events(self, job_id: str) -> list[JobEvent]: ...

    async def cancel(self, job_id: str, now: dt.datetime, reason: str) -> Job:
        """Pending: CANCELLED now. Running: cancel requested. Finished: FailedPrecondition."""
        ...

    async def lease(
        self,
        worker_id: str,
        queues: Sequence[str],
        max_jobs: int,
        now: dt.datetime,
        task_types: Sequence[str] = (),
    ) -> list[Job]: ...

    async def heartbeat(
        self, worker_id: str, leases: Sequence[LeaseRef], now: dt.datetime
    ) -> HeartbeatResult:
        """Extend every lease the worker still holds; report the others in `stale`.

        A lease can go stale at any moment (its outcome was reported, or it was reaped),
        so one stale lease never stops the live ones from being extended.
        """
        ...

    async def report_progress(
        self, worker_id: str, lease: LeaseRef, progress: float, message: str, now: dt.datetime
    ) -> Job: ...

    async def report(
        self, worker_id: str, outcomes: Sequence[Outcome], now: dt.datetime
    ) -> list[Job]:
        """Apply completions, failures and cancellations, all or none."""
        ...

    async def release(
        self, worker_id: str, leases: Sequence[LeaseRef], now: dt.datetime
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

    async def replay_dead(self, selector: DeadLetterSelector, now: dt.datetime) -> int: ...

    async def discard_dead(self, selector: DeadLetterSelector, now: dt.datetime) -> int: ...


class QueueRepository(Protocol):
    async def create(self, queue: QueueConfig, now: dt.datetime) -> QueueConfig: ...

    async def get(self, name: str) -> QueueConfig | None: ...

    async def all(self) -> list[QueueConfig]: ...

    async def update(self, name: str, changes: dict[str, Any], now: dt.datetime) -> QueueConfig: ...

    async def purge(self, name: str, now: dt.datetime) -> int:
        """Cancel every job of the queue that has not started."""
        ...

    async def stats(self, name: str | None, now: dt.datetime) -> list[QueueStats]: ...


class WorkerRepository(Protocol):
    async def register(self, worker: WorkerInfo) -> WorkerInfo: ...

    async def get(self, worker_id: str) -> WorkerInfo | None: ...

    async def all(self, now: dt.datetime, lost_after: dt.timedelta) -> list[WorkerInfo]: ...

    async def set_state(self, worker_id: str, state: WorkerState) -> WorkerInfo: ...


class EventLog(Protocol):
    async def unpublished(self, limit: int) -> list[JobEvent]:
        """The oldest events not yet published, in publication order."""
        ...

    async def mark_published(self, event_ids: Sequence[str], at: dt.datetime) -> None: ...

    async def backlog(self) -> tuple[int, dt.datetime | None]:
        """How many events wait, and when the oldest happened."""
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
