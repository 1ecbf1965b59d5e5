"""The PostgreSQL job repository: SKIP LOCKED leasing, one transaction per change."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from jobq.core.bounds import is_job_id
from jobq.core.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    StaleLease,
)
from jobq.core.lifecycle import initial_state
from jobq.core.model import (
    HeartbeatResult,
    Job,
    JobEvent,
    JobFilter,
    LeaseRef,
    NewJob,
    Outcome,
    QueueConfig,
    ReleaseResult,
    SubmitResult,
    WorkerState,
)
from jobq.core.scheduling import weighted_order
from jobq.core.states import EventKind, JobState
from jobq.store.base import DeadLetterSelector, Page, Tenant
from jobq.store.changes import (
    Change,
    batch_duplicate,
    cancel_change,
    checked_dead_letters,
    group_by_columns,
    idempotent_match,
    lease_expiry_change,
    no_repeated_jobs,
    outcome_change,
    partition_leases,
    stale_reason,
)
from jobq.store.postgres.db import Conn, PgDb
from jobq.store.postgres.rows import event_from_row, job_from_row, queue_from_row, queue_params
from jobq.store.transitions import job_event, transition_event

S, E = JobState, EventKind

WORK_CHANNEL = "jobq_work"

INSERT_EVENT = """
INSERT INTO job_events (id, job_id, queue, tenant, kind, from_state, to_state, attempt, at,
                        details)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""

INSERT_JOB = """
INSERT INTO jobs (id, queue, tenant, type, payload, state, priority, max_attempts, run_at,
                  timeout, expires_at, idempotency_key, correlation_id, trace_context,
                  created_at, updated_at)
VALUES (%(id)s, %(queue)s, %(tenant)s, %(type)s, %(payload)s, %(state)s, %(priority)s,
        %(max_attempts)s, %(run_at)s, %(timeout)s, %(expires_at)s, %(idempotency_key)s,
        %(correlation_id)s, %(trace_context)s, %(now)s, %(now)s)
"""

INSERT_QUEUE_IF_MISSING = """
INSERT INTO queues (name, tenant, paused, weight, max_attempts, backoff_base, backoff_max,
                    lease_timeout, default_ttl, concurrency_limit, retention, created_at,
                    updated_at)
VALUES (%(name)s, %(tenant)s, %(paused)s, %(weight)s, %(max_attempts)s, %(backoff_base)s,
        %(backoff_max)s, %(lease_timeout)s, %(default_ttl)s, %(concurrency_limit)s,
        %(retention)s, %(now)s, %(now)s)
ON CONFLICT (tenant, name) DO NOTHING
"""

# SKIP LOCKED: replicas leasing at once take different rows instead of queueing on locks.
LEASE = """
WITH picked AS (
    SELECT id FROM jobs
    WHERE tenant = %(tenant)s AND queue = %(queue)s AND state = 'queued'
      AND (expires_at IS NULL OR expires_at > %(now)s) {type_filter}
    ORDER BY priority DESC, run_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE jobs j
SET state = 'running', attempt = j.attempt + 1, worker_id = %(worker)s,
    lease_expires_at = %(lease_until)s, started_at = %(now)s, updated_at = %(now)s,
    cancel_requested = false, progress = 0, progress_message = ''
FROM picked WHERE j.id = picked.id
RETURNING j.*
"""


def event_params(event: JobEvent) -> tuple[Any, ...]:
    return (
        event.id,
        event.job_id,
        event.queue,
        event.tenant,
        event.kind.value,
        event.from_state.value if event.from_state else None,
        event.to_state.value if event.to_state else None,
        event.attempt,
        event.at,
        Jsonb(event.details),
    )


async def insert_events(conn: Conn, events: Iterable[JobEvent]) -> None:
    params = [event_params(e) for e in events]
    if params:
        async with conn.cursor() as cur:
            await cur.executemany(INSERT_EVENT, params)


async def notify_work(conn: Conn, queues: Iterable[str]) -> None:
    """Wake idle long-polls on every replica once this transaction commits."""
    for queue in sorted(set(queues)):
        await conn.execute("SELECT pg_notify(%s, %s)", (WORK_CHANNEL, queue))


QueueKey = tuple[str, str]  # (tenant, name)


def queue_of(job: Job | NewJob) -> QueueKey:
    return (job.tenant, job.queue)


async def load_queues(conn: Conn, keys: Iterable[QueueKey]) -> dict[QueueKey, QueueConfig]:
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    cur = await conn.execute(
        "SELECT q.* FROM queues q JOIN unnest(%s::text[], %s::text[]) AS k(tenant, name)"
        " ON q.tenant = k.tenant AND q.name = k.name",
        ([t for t, _ in wanted], [n for _, n in wanted]),
    )
    return {(row["tenant"], row["name"]): queue_from_row(row) for row in await cur.fetchall()}


async def queues_named(conn: Conn, names: Iterable[str], tenant: Tenant) -> list[QueueConfig]:
    """The queues of these names in `tenant`, or in every tenant (None)."""
    sql = "SELECT * FROM queues WHERE name = ANY(%s)"
    params: list[Any] = [sorted(set(names))]
    if tenant is not None:
        sql += " AND tenant = %s"
        params.append(tenant)
    cur = await conn.execute(sql + " ORDER BY name, tenant", params)
    return [queue_from_row(row) for row in await cur.fetchall()]


def _in_scope(job: Job | None, tenant: Tenant) -> Job | None:
    return job if job is not None and (tenant is None or job.tenant == tenant) else None


def _scoped(jobs: dict[str, Job], tenant: Tenant) -> dict[str, Job]:
    """Only the jobs in scope: another tenant's job reads as "no such job"."""
    return jobs if tenant is None else {i: j for i, j in jobs.items() if j.tenant == tenant}


async def fetch_jobs(conn: Conn, ids: Sequence[str], lock: bool = False) -> dict[str, Job]:
    if not ids:
        return {}
    sql = "SELECT * FROM jobs WHERE id = ANY(%s::uuid[])" + (" FOR UPDATE" if lock else "")
    try:
        cur = await conn.execute(sql, (list(ids),))
    except psycopg.errors.InvalidTextRepresentation:
        raise NotFound(f"not a job id: {', '.join(ids)}") from None
    return {str(row["id"]): job_from_row(row) for row in await cur.fetchall()}


def _valid_uuid(value: str) -> bool:
    # Canonical form only: uuid.UUID takes `urn:uuid:` and braces, which the ::uuid cast
    # refuses, and SQLite (ids as text) would match none of them either.
    return is_job_id(value)


class PgJobs:
    def __init__(self, db: PgDb, queue_defaults: QueueConfig, rng: random.Random) -> None:
        self._db = db
        self._defaults = queue_defaults
        self._rng = rng

    async def submit(self, jobs: Sequence[NewJob], now: dt.datetime) -> list[SubmitResult]:
        try:
            return await self._submit(jobs, now)
        except psycopg.errors.UniqueViolation:
            # Another replica inserted the same idempotency key between our check and our
            # insert; running again finds its job.
            return await self._submit(jobs, now)

    async def _submit(self, jobs: Sequence[NewJob], now: dt.datetime) -> list[SubmitResult]:
        async with self._db.tx() as conn:
            for tenant, name in sorted({queue_of(j) for j in jobs}):
                params = queue_params(self._defaults) | {
                    "name": name,
                    "tenant": tenant,
                    "now": now,
                }
                await conn.execute(INSERT_QUEUE_IF_MISSING, params)
            queues = await load_queues(conn, (queue_of(j) for j in jobs))
            results: list[SubmitResult | None] = []
            fresh: list[tuple[NewJob, QueueConfig]] = []
            seen: dict[tuple[str, str, str], NewJob] = {}
            for index, new in enumerate(jobs):
                existing = await self._match_idempotent(conn, new, index, seen)
                if existing is not None:
                    results.append(SubmitResult(existing, created=False))
                    continue
                if new.idempotency_key:
                    seen[(new.tenant, new.queue, new.idempotency_key)] = new
                fresh.append((new, queues[queue_of(new)]))
                results.append(None)
            rows, events = [], []
            for new, queue in fresh:
                state = initial_state(new.run_at, now)
                ttl = new.ttl if new.ttl is not None else queue.default_ttl
                rows.append(
                    {
                        "id": new.id,
                        "queue": new.queue,
                        "tenant": new.tenant,
                        "type": new.type,
                        "payload": new.payload,
                        "state": state.value,
                        "priority": new.priority,
                        "max_attempts": new.max_attempts or queue.max_attempts,
                        "run_at": new.run_at,
                        "timeout": new.timeout,
                        "expires_at": new.run_at + ttl if ttl else None,
                        "idempotency_key": new.idempotency_key,
                        "correlation_id": new.correlation_id,
                        "trace_context": Jsonb(new.trace_context),
                        "now": now,
                    }
                )
                events.append(
                    transition_event(
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
                    )
                )
            if rows:
                async with conn.cursor() as cur:
                    await cur.executemany(INSERT_JOB, rows)
            await insert_events(conn, events)
            await notify_work(
                conn, (new.queue for new, _ in fresh if initial_state(new.run_at, now) is S.QUEUED)
            )
            stored = await fetch_jobs(conn, [new.id for new, _ in fresh])
        fresh_iter = iter(fresh)
        return [
            r if r is not None else SubmitResult(stored[next(fresh_iter)[0].id], created=True)
            for r in results
        ]

    async def _match_idempotent(
        self, conn: Conn, new: NewJob, index: int, seen: dict[tuple[str, str, str], NewJob]
    ) -> Job | None:
        if not new.idempotency_key:
            return None
        batch_duplicate(new, index, seen)
        key = (new.tenant, new.queue, new.idempotency_key)
        cur = await conn.execute(
            "SELECT * FROM jobs WHERE tenant = %s AND queue = %s AND idempotency_key = %s", key
        )
        row = await cur.fetchone()
        return idempotent_match(None if row is None else job_from_row(row), new)

    async def get(self, job_id: str, *, tenant: Tenant = None) -> Job | None:
        if not _valid_uuid(job_id):
            return None
        async with self._db.read() as conn:
            return _in_scope((await fetch_jobs(conn, [job_id])).get(job_id), tenant)

    async def page(
        self, flt: JobFilter, limit: int, after: str | None, *, tenant: Tenant = None
    ) -> Page:
        clauses, params = _filter_sql(flt)
        if tenant is not None:
            clauses.append("tenant = %s")
            params.append(tenant)
        if after:
            if not _valid_uuid(after):
                raise InvalidArgument("page_token", "is not a token from a previous page")
            clauses.append("id < %s::uuid")
            params.append(after)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        async with self._db.read() as conn:
            cur = await conn.execute(
                f"SELECT * FROM jobs {where} ORDER BY id DESC LIMIT %s",
                [*params, limit + 1],
            )
            rows = await cur.fetchall()
        jobs = [job_from_row(r) for r in rows[:limit]]
        return Page(jobs, jobs[-1].id if len(rows) > limit else None)

    async def events(self, job_id: str) -> list[JobEvent]:
        if not _valid_uuid(job_id):
            return []
        async with self._db.read() as conn:
            cur = await conn.execute(
                "SELECT * FROM job_events WHERE job_id = %s::uuid ORDER BY seq", (job_id,)
            )
            return [event_from_row(r) for r in await cur.fetchall()]

    async def cancel(
        self, job_id: str, now: dt.datetime, reason: str, *, tenant: Tenant = None
    ) -> Job:
        if not _valid_uuid(job_id):
            raise NotFound(f"job {job_id} not found")
        async with self._db.tx() as conn:
            job = _in_scope((await fetch_jobs(conn, [job_id], lock=True)).get(job_id), tenant)
            if job is None:
                raise NotFound(f"job {job_id} not found")
            change = cancel_change(job, now, reason)
            if change is not None:
                sets = ", ".join(f"{column} = %({column})s" for column in change.fields)
                await conn.execute(
                    f"UPDATE jobs SET {sets}, updated_at = %(now)s WHERE id = %(id)s",
                    change.fields | {"now": now, "id": job_id},
                )
                await insert_events(conn, [change.event])
            return (await fetch_jobs(conn, [job_id]))[job_id]

    async def lease(
        self,
        worker_id: str,
        queues: Sequence[str],
        max_jobs: int,
        now: dt.datetime,
        task_types: Sequence[str] = (),
        *,
        tenant: Tenant = None,
    ) -> list[Job]:
        type_filter = "AND type = ANY(%(types)s)" if task_types else ""
        async with self._db.tx() as conn:
            configs = await queues_named(conn, queues, tenant)
            open_queues = [(q, q.weight) for q in configs if not q.paused]
            leased: list[Job] = []
            for queue in weighted_order(open_queues, self._rng):
                room = max_jobs - len(leased)
                if room <= 0:
                    break
                if queue.concurrency_limit:
                    # Serialise leasing of a capped queue across replicas for this transaction.
                    await conn.execute(
                        "SELECT pg_advisory_xact_lock(hashtext(%s))",
                        (f"jobq-concurrency:{queue.tenant}/{queue.name}",),
                    )
                    cur = await conn.execute(
                        "SELECT count(*) AS n FROM jobs"
                        " WHERE tenant = %s AND queue = %s AND state = 'running'",
                        (queue.tenant, queue.name),
                    )
                    row = await cur.fetchone()
                    room = min(room, queue.concurrency_limit - (row["n"] if row else 0))
                    if room <= 0:
                        continue
                cur = await conn.execute(
                    LEASE.format(type_filter=type_filter),
                    {
                        "queue": queue.name,
                        "tenant": queue.tenant,
                        "now": now,
                        "limit": room,
                        "worker": worker_id,
                        "lease_until": now + queue.lease_timeout,
                        "types": list(task_types),
                    },
                )
                started = sorted(
                    (job_from_row(r) for r in await cur.fetchall()),
                    key=lambda j: (-j.priority, j.run_at, j.id),
                )
                await insert_events(
                    conn,
                    (
                        job_event(
                            j, E.STARTED, S.RUNNING, now, from_state=S.QUEUED, worker_id=worker_id
                        )
                        for j in started
                    ),
                )
                leased.extend(started)
            return leased

    async def _held(
        self, conn: Conn, worker_id: str, leases: Sequence[LeaseRef], tenant: Tenant
    ) -> dict[str, Job]:
        """The jobs behind `leases`, locked, or StaleLease naming every lease not held."""
        no_repeated_jobs(leases)
        ids = [lease.job_id for lease in leases]
        valid = [i for i in ids if _valid_uuid(i)]
        jobs = _scoped(await fetch_jobs(conn, sorted(valid), lock=True), tenant)
        stale = {
            lease.job_id: why
            for lease in leases
            if (why := stale_reason(jobs.get(lease.job_id), worker_id, lease)) is not None
        }
        if stale:
            raise StaleLease(stale)
        return jobs

    async def heartbeat(
        self,
        worker_id: str,
        leases: Sequence[LeaseRef],
        now: dt.datetime,
        *,
        tenant: Tenant = None,
    ) -> HeartbeatResult:
        no_repeated_jobs(leases)
        async with self._db.tx() as conn:
            cur = await conn.execute(
                "UPDATE workers SET last_heartbeat = %s, "
                "state = CASE WHEN state = 'lost' THEN 'active' ELSE state END "
                "WHERE id = %s RETURNING state",
                (now, worker_id),
            )
            row = await cur.fetchone()
            if row is None:
                raise FailedPrecondition(f"worker {worker_id} is not registered")
            valid = sorted(lease.job_id for lease in leases if _valid_uuid(lease.job_id))
            jobs = _scoped(await fetch_jobs(conn, valid, lock=True), tenant)
            held, stale = partition_leases(jobs, worker_id, leases)
            queues = await load_queues(conn, (queue_of(j) for j in held))
            expiries = {j.id: now + queues[queue_of(j)].lease_timeout for j in held}
            if expiries:
                async with conn.cursor() as c:
                    await c.executemany(
                        "UPDATE jobs SET lease_expires_at = %s WHERE id = %s",
                        [(until, job_id) for job_id, until in expiries.items()],
                    )
        return HeartbeatResult(
            cancel_job_ids=tuple(j.id for j in held if j.cancel_requested),
            drain=row["state"] == WorkerState.DRAINING.value,
            lease_expires_at=min(expiries.values(), default=None),
            stale=stale,
        )

    async def report_progress(
        self,
        worker_id: str,
        lease: LeaseRef,
        progress: float,
        message: str,
        now: dt.datetime,
        *,
        tenant: Tenant = None,
    ) -> Job:
        async with self._db.tx() as conn:
            await self._held(conn, worker_id, [lease], tenant)
            cur = await conn.execute(
                "UPDATE jobs SET progress = %s, progress_message = %s, updated_at = %s "
                "WHERE id = %s RETURNING *",
                (progress, message, now, lease.job_id),
            )
            row = await cur.fetchone()
            assert row is not None
            return job_from_row(row)

    async def _apply(self, conn: Conn, changes: Sequence[Change], now: dt.datetime) -> None:
        """Write running jobs' changes, their leases ending with them: one pipelined
        statement batch per set of columns, not a round trip per job."""
        for columns, group in group_by_columns(changes).items():
            sets = ", ".join(f"{column} = %({column})s" for column in columns)
            async with conn.cursor() as cur:
                await cur.executemany(
                    f"UPDATE jobs SET {sets}, worker_id = NULL, lease_expires_at = NULL, "
                    "updated_at = %(now)s WHERE id = %(id)s",
                    [c.fields | {"now": now, "id": c.event.job_id} for c in group],
                )

    async def report(
        self,
        worker_id: str,
        outcomes: Sequence[Outcome],
        now: dt.datetime,
        *,
        tenant: Tenant = None,
    ) -> list[Job]:
        async with self._db.tx() as conn:
            jobs = await self._held(conn, worker_id, [o.lease for o in outcomes], tenant)
            queues = await load_queues(conn, (queue_of(j) for j in jobs.values()))
            changes = [
                outcome_change(
                    jobs[o.lease.job_id], queues[queue_of(jobs[o.lease.job_id])], o, now, self._rng
                )
                for o in outcomes
            ]
            await self._apply(conn, changes, now)
            await insert_events(conn, (c.event for c in changes))
            after = await fetch_jobs(conn, list(jobs))
        return [after[o.lease.job_id] for o in outcomes]

    async def release(
        self,
        worker_id: str,
        leases: Sequence[LeaseRef],
        now: dt.datetime,
        *,
        tenant: Tenant = None,
    ) -> ReleaseResult:
        no_repeated_jobs(leases)
        async with self._db.tx() as conn:
            valid = sorted(lease.job_id for lease in leases if _valid_uuid(lease.job_id))
            jobs = _scoped(await fetch_jobs(conn, valid, lock=True), tenant)
            held, stale = partition_leases(jobs, worker_id, leases)
            if not held:
                return ReleaseResult(0, stale)
            # A released attempt does not count against max_attempts.
            async with conn.cursor() as cur:
                await cur.executemany(
                    "UPDATE jobs SET state = 'queued', attempt_base = attempt_base + 1, "
                    "worker_id = NULL, lease_expires_at = NULL, run_at = %s, updated_at = %s "
                    "WHERE id = %s",
                    [(now, now, j.id) for j in held],
                )
            await insert_events(
                conn,
                (
                    job_event(
                        j, E.RELEASED, S.QUEUED, now, from_state=S.RUNNING, worker_id=worker_id
                    )
                    for j in held
                ),
            )
            await notify_work(conn, (j.queue for j in held))
            return ReleaseResult(len(held), stale)

    async def promote_due(self, now: dt.datetime, limit: int) -> int:
        async with self._db.tx() as conn:
            cur = await conn.execute(
                "WITH due AS (SELECT id FROM jobs WHERE state = 'scheduled' AND run_at <= %(now)s"
                " AND (expires_at IS NULL OR expires_at > %(now)s) ORDER BY run_at"
                " LIMIT %(limit)s FOR UPDATE SKIP LOCKED) "
                "UPDATE jobs j SET state = 'queued', updated_at = %(now)s FROM due "
                "WHERE j.id = due.id RETURNING j.id, j.queue, j.tenant, j.attempt,"
                " j.correlation_id, j.trace_context",
                {"now": now, "limit": limit},
            )
            due = await cur.fetchall()
            await insert_events(
                conn,
                (
                    transition_event(
                        job_id=str(r["id"]),
                        correlation_id=r["correlation_id"] or None,
                        trace_context=r["trace_context"] or None,
                        queue=r["queue"],
                        tenant=r["tenant"],
                        kind=E.PROMOTED,
                        from_state=S.SCHEDULED,
                        to_state=S.QUEUED,
                        attempt=r["attempt"],
                        at=now,
                    )
                    for r in due
                ),
            )
            await notify_work(conn, (r["queue"] for r in due))
            return len(due)

    async def reap_expired_leases(
        self, now: dt.datetime, limit: int, leader_since: dt.datetime | None = None
    ) -> list[Job]:
        grace, params = "", [now]
        if leader_since is not None:
            grace = (
                " AND (tenant, queue) IN (SELECT tenant, name FROM queues"
                " WHERE %s::timestamptz + lease_timeout <= %s)"
            )
            params += [leader_since, now]
        async with self._db.tx() as conn:
            cur = await conn.execute(
                f"SELECT * FROM jobs WHERE state = 'running' AND lease_expires_at <= %s{grace} "
                "ORDER BY lease_expires_at LIMIT %s FOR UPDATE SKIP LOCKED",
                (*params, limit),
            )
            expired = [job_from_row(r) for r in await cur.fetchall()]
            queues = await load_queues(conn, (queue_of(j) for j in expired))
            changes = [lease_expiry_change(j, queues[queue_of(j)], now, self._rng) for j in expired]
            await self._apply(conn, changes, now)
            await insert_events(conn, (c.event for c in changes))
            after = await fetch_jobs(conn, [j.id for j in expired])
        return [after[j.id] for j in expired]

    async def expire_unstarted(self, now: dt.datetime, limit: int) -> list[str]:
        async with self._db.tx() as conn:
            cur = await conn.execute(
                "WITH gone AS (SELECT id, state FROM jobs WHERE state IN ('scheduled', 'queued')"
                " AND expires_at <= %(now)s LIMIT %(limit)s FOR UPDATE SKIP LOCKED) "
                "UPDATE jobs j SET state = 'expired', finished_at = %(now)s, updated_at = %(now)s"
                " FROM gone WHERE j.id = gone.id"
                " RETURNING j.id, j.queue, j.tenant, j.attempt, j.correlation_id, j.trace_context,"
                " gone.state"
                " AS was",
                {"now": now, "limit": limit},
            )
            rows = await cur.fetchall()
            await insert_events(
                conn,
                (
                    transition_event(
                        job_id=str(r["id"]),
                        correlation_id=r["correlation_id"] or None,
                        trace_context=r["trace_context"] or None,
                        queue=r["queue"],
                        tenant=r["tenant"],
                        kind=E.EXPIRED,
                        from_state=S(r["was"]),
                        to_state=S.EXPIRED,
                        attempt=r["attempt"],
                        at=now,
                    )
                    for r in rows
                ),
            )
            return [r["queue"] for r in rows]

    async def delete_finished(self, now: dt.datetime, limit: int) -> int:
        async with self._db.tx() as conn:
            cur = await conn.execute(
                "DELETE FROM jobs WHERE id IN ("
                " SELECT j.id FROM jobs j JOIN queues q ON q.tenant = j.tenant AND q.name = j.queue"
                " WHERE j.finished_at IS NOT NULL AND j.finished_at < %s - q.retention"
                " LIMIT %s FOR UPDATE OF j SKIP LOCKED)",
                (now, limit),
            )
            return cur.rowcount

    async def _select_dead(
        self, conn: Conn, selector: DeadLetterSelector, tenant: Tenant
    ) -> list[Job]:
        if selector.ids:
            valid = [i for i in selector.ids if _valid_uuid(i)]
            jobs = await fetch_jobs(conn, valid, lock=True)
            seen = {i: j for i, j in jobs.items() if _in_scope(j, tenant) is not None}
            return checked_dead_letters(selector.ids, selector.queue, seen)
        sql, params = "SELECT * FROM jobs WHERE state = 'dead' AND queue = %s", [selector.queue]
        if tenant is not None:
            sql += " AND tenant = %s"
            params.append(tenant)
        cur = await conn.execute(sql + " FOR UPDATE", params)
        return [job_from_row(r) for r in await cur.fetchall()]

    async def replay_dead(
        self, selector: DeadLetterSelector, now: dt.datetime, *, tenant: Tenant = None
    ) -> int:
        async with self._db.tx() as conn:
            dead = await self._select_dead(conn, selector, tenant)
            if not dead:
                return 0
            # A replayed job gets its full attempt budget again; attempt stays monotonic
            # so that fencing tokens never repeat.
            async with conn.cursor() as cur:
                await cur.executemany(
                    "UPDATE jobs SET state = 'queued', attempt_base = attempt, run_at = %s, "
                    "finished_at = NULL, result = NULL, updated_at = %s WHERE id = %s",
                    [(now, now, j.id) for j in dead],
                )
            await insert_events(
                conn,
                (job_event(j, E.REPLAYED, S.QUEUED, now, from_state=S.DEAD) for j in dead),
            )
            await notify_work(conn, (j.queue for j in dead))
            return len(dead)

    async def discard_dead(
        self, selector: DeadLetterSelector, now: dt.datetime, *, tenant: Tenant = None
    ) -> int:
        async with self._db.tx() as conn:
            dead = await self._select_dead(conn, selector, tenant)
            await insert_events(
                conn,
                (job_event(j, E.DISCARDED, None, now, from_state=S.DEAD) for j in dead),
            )
            if dead:
                await conn.execute(
                    "DELETE FROM jobs WHERE id = ANY(%s::uuid[])", ([j.id for j in dead],)
                )
            return len(dead)


def _filter_sql(flt: JobFilter) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if flt.queue:
        clauses.append("queue = %s")
        params.append(flt.queue)
    if flt.states:
        clauses.append("state = ANY(%s)")
        params.append([s.value for s in flt.states])
    if flt.type:
        clauses.append("type = %s")
        params.append(flt.type)
    if flt.tenant:
        clauses.append("tenant = %s")
        params.append(flt.tenant)
    if flt.created_after:
        clauses.append("created_at > %s")
        params.append(flt.created_after)
    if flt.created_before:
        clauses.append("created_at < %s")
        params.append(flt.created_before)
    return clauses, params
