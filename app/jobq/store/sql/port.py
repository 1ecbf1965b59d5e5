"""The dialect port: what the one store body needs from a SQL database, and no more.

A dialect (`jobq.store.postgres.dialect`, `jobq.store.sqlite.dialect`) brings its
connection handling, its encoding of times, ids and JSON, its named queries, and the
few things the two databases do differently: PostgreSQL locks rows (`FOR UPDATE SKIP
LOCKED`), serialises capped queues with advisory locks and wakes other replicas with
NOTIFY; SQLite has one writer, which is all the locking it needs, and one server per
file, so nothing to notify.

A named query is dialect-private data: the body passes it back to the dialect that
gave it, with its parameters in domain types (datetimes, timedeltas, dicts, lists).
A *write* is a set of rows for one or more tables (`jobs`, `events`, `wake`) applied
in one go: PostgreSQL as one statement over one JSON document per table (ADR 0021),
SQLite as one `executemany` per table.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from jobq.auth.keys import ApiKey
from jobq.core.model import HeldJob, Job, JobEvent, LeasedJob, QueueConfig, WorkerInfo

Row = Any  # a dict (psycopg) or sqlite3.Row: both read by column name
Params = Mapping[str, Any]


class JobQueries(Protocol):
    """The named queries of the repositories (one module of each dialect)."""

    ENSURE_QUEUES: Any  # queue rows for (tenants[i], names[i]), created with defaults if new
    QUEUES_BY_KEY: Any
    QUEUES_NAMED: Any
    JOB_BY_KEY: Any
    JOBS_BY_ID: Any
    JOBS_BY_ID_LOCKED: Any
    HELD_LOCKED: Any  # JOBS_BY_ID_LOCKED with only the columns of a HeldJob
    EVENTS_OF_JOB: Any
    PAGE: str  # with {where}
    FILTERS: dict[str, str]
    AFTER: str
    SUBMIT: Any  # write: jobs (+ event_id: each job's submitted event derived in SQL), wake
    LEASE: Any
    LEASE_CANDIDATES: Any
    LEASE_IDS: Any
    RUNNING_BY_KEY: Any
    RUNNING_IN_TENANT: Any
    EVENTS: Any  # write: events, wake
    HEARTBEAT: Any  # a summary row (worker_state, extended, until), then one per cancel
    PROGRESS: Any
    END_LEASES: Any  # write: jobs (END_COLUMNS), events, wake
    SET_CANCEL: Any
    PROMOTE: Any
    EXPIRABLE: Any
    EXPIRE: Any
    EXPIRED_LEASES: Any
    EXPIRED_LEASES_AFTER_GRACE: Any
    DELETE_FINISHED: Any
    DEAD_OF_QUEUE: Any
    DELETE_JOBS: Any
    # workers
    UPSERT_WORKER: Any
    WORKER_BY_ID: Any
    WORKER_ROW_BY_ID: Any  # WORKER_BY_ID without counting its running jobs (in_flight 0)
    WORKERS: Any
    SET_WORKER_STATE: Any
    # the outbox
    UNPUBLISHED: Any
    MARK_PUBLISHED: Any
    BACKLOG: Any
    PRUNE_EVENTS: Any
    # queues
    INSERT_QUEUE: Any
    UPDATE_QUEUE: Any
    QUEUE_LOCKED: Any
    ALL_QUEUES: Any
    QUEUES_IN_SCOPE: Any
    STATE_COUNTS: Any
    UNFINISHED_COUNTS: Any
    PURGEABLE: Any
    PURGE: Any
    PURGE_CHUNK: Any  # None: the dialect purges the rows as read (PURGEABLE, PURGE)
    # API keys
    INSERT_KEY: Any
    KEY_BY_ID: Any
    KEYS: Any
    REVOKE_KEY: Any
    # workflows (ADR 0016)
    INSERT_WORKFLOW: Any
    SUBMIT_NODES: Any  # write: jobs (+ workflow_id, workflow_key, waiting_on), edges, events, wake
    WORKFLOW_BY_ID: Any
    WORKFLOWS_BY_ID: Any
    WORKFLOW_JOBS: Any
    WORKFLOW_EDGES: Any
    UNFINISHED_WORKFLOW_JOBS_LOCKED: Any
    CANCEL_JOBS: Any
    REQUEST_CANCEL: Any
    READY_CHILDREN: Any  # the waiting children of succeeded parents, one parent fewer each
    CANCEL_DESCENDANTS: Any  # every waiting descendant of jobs that will not succeed
    PARENT_RESULTS: Any
    # schedules (ADR 0014)
    INSERT_SCHEDULE: Any
    UPDATE_SCHEDULE: Any
    SCHEDULE_BY_NAME: Any
    SCHEDULE_BY_NAME_LOCKED: Any
    SCHEDULES: Any
    DELETE_SCHEDULE: Any
    DUE_SCHEDULES: Any
    ADVANCE_SCHEDULE: Any  # the row's tenant, name and queue if it still held the expected times
    INSERT_SCHEDULE_RUN: Any
    PRUNE_SCHEDULE_RUNS: Any
    SCHEDULE_RUNS: Any


class Dialect(Protocol):
    @property
    def q(self) -> JobQueries: ...

    @property
    def unique_violation(self) -> tuple[type[Exception], ...]: ...

    def tx(self) -> contextlib.AbstractAsyncContextManager[Any]: ...

    def read(self) -> contextlib.AbstractAsyncContextManager[Any]: ...

    async def fetch(self, conn: Any, query: Any, params: Params) -> list[Row]: ...

    async def execute(self, conn: Any, query: Any, params: Params) -> int:
        """Run a statement; the number of rows it changed."""
        ...

    async def write(
        self, conn: Any, query: Any, params: Params, **tables: Sequence[Mapping[str, Any]]
    ) -> None:
        """Apply the rows of every table `query` names (with `params` common to them)."""
        ...

    async def lock_queue(self, conn: Any, tenant: str, name: str) -> None:
        """Serialise leasing from one capped queue until the transaction ends."""
        ...

    def valid_id(self, value: str) -> bool:
        """Whether `value` can be a job id here (a malformed one matches nothing)."""
        ...

    def decode_time(self, value: Any) -> Any:
        """A time column as read straight from a row, as a datetime."""
        ...

    def decode_span(self, value: Any) -> Any:
        """A duration column as read straight from a row, as a timedelta."""
        ...

    def job(self, row: Row) -> Job: ...

    def leased(self, row: Row, lease_expires_at: dt.datetime) -> LeasedJob:
        """A row of the lease statements (LEASE, LEASE_IDS), which return only what a
        lease needs."""
        ...

    def held(self, row: Row) -> HeldJob:
        """A row of HELD_LOCKED: a running job as an outcome needs it."""
        ...

    def queue(self, row: Row) -> QueueConfig: ...

    def event(self, row: Row) -> JobEvent: ...

    def worker(self, row: Row) -> WorkerInfo: ...

    def api_key(self, row: Row) -> ApiKey: ...
