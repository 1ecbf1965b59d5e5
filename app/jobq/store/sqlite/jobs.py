"""The SQLite job repository: every state change is one transaction with its events."""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Iterable, Sequence
from typing import Any

import aiosqlite

from jobq.core.errors import (
    FailedPrecondition,
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
from jobq.store.sqlite.db import SqliteDb, opt_span_us, opt_to_us, to_us
from jobq.store.sqlite.rows import (
    event_from_row,
    event_params,
    job_from_row,
    queue_from_row,
    queue_params,
)
from jobq.store.transitions import attempt_times, job_event, transition_event

S = JobState
E = EventKind

INSERT_EVENT = """
INSERT INTO job_events (id, job_id, queue, tenant, kind, from_state, to_state, attempt, at,
                        details)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""

INSERT_JOB = """
INSERT INTO jobs (id, queue, tenant, type, payload, state, priority, max_attempts, run_at,
                  timeout_us, expires_at, idempotency_key, correlation_id, trace_context,
                  created_at, updated_at)
VALUES (:id, :queue, :tenant, :type, :payload, :state, :priority, :max_attempts, :run_at,
        :timeout_us, :expires_at, :idempotency_key, :correlation_id, :trace_context,
        :now, :now)
"""

INSERT_QUEUE_IF_MISSING = """
INSERT OR IGNORE INTO queues (name, tenant, paused, weight, max_attempts, backoff_base_us,
                              backoff_max_us, lease_timeout_us, default_ttl_us,
                              concurrency_limit, retention_us, created_at, updated_at)
VALUES (:name, :tenant, :paused, :weight, :max_attempts, :backoff_base_us, :backoff_max_us,
        :lease_timeout_us, :default_ttl_us, :concurrency_limit, :retention_us, :now, :now)
"""

SELECT_LEASABLE = """
SELECT * FROM jobs
WHERE tenant = ? AND queue = ? AND state = 'queued' AND (expires_at IS NULL OR expires_at > ?)
      {type_filter}
ORDER BY priority DESC, run_at, id
LIMIT ?
"""

START_JOB = """
UPDATE jobs SET state = 'running', attempt = attempt + 1, worker_id = ?, lease_expires_at = ?,
                started_at = ?, updated_at = ?, cancel_requested = 0, progress = 0,
                progress_message = ''
WHERE id = ?
"""


def _placeholders(values: Sequence[Any]) -> str:
    return ", ".join("?" for _ in values)


async def insert_events(conn: aiosqlite.Connection, events: Iterable[JobEvent]) -> None:
    await conn.executemany(INSERT_EVENT, [event_params(e) for e in events])


QueueKey = tuple[str, str]  # (tenant, name)


def queue_of(job: Job | NewJob) -> QueueKey:
    return (job.tenant, job.queue)


async def load_queues(
    conn: aiosqlite.Connection, keys: Iterable[QueueKey]
) -> dict[QueueKey, QueueConfig]:
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    found: dict[QueueKey, QueueConfig] = {}
    for start in range(0, len(wanted), 400):
        chunk = wanted[start : start + 400]
        rows = ", ".join("(?, ?)" for _ in chunk)
        cursor = await conn.execute(
            f"SELECT * FROM queues WHERE (tenant, name) IN (VALUES {rows})",
            [value for key in chunk for value in key],
        )
        found.update(
            ((row["tenant"], row["name"]), queue_from_row(row)) for row in await cursor.fetchall()
        )
    return found


async def queues_named(
    conn: aiosqlite.Connection, names: Iterable[str], tenant: Tenant
) -> list[QueueConfig]:
    """The queues of these names in `tenant`, or in every tenant (None)."""
    wanted = sorted(set(names))
    if not wanted:
        return []
    sql, params = f"SELECT * FROM queues WHERE name IN ({_placeholders(wanted)})", list(wanted)
    if tenant is not None:
        sql += " AND tenant = ?"
        params.append(tenant)
    cursor = await conn.execute(sql + " ORDER BY name, tenant", params)
    return [queue_from_row(row) for row in await cursor.fetchall()]


def _in_scope(job: Job | None, tenant: Tenant) -> Job | None:
    return job if job is not None and (tenant is None or job.tenant == tenant) else None


def _scoped(jobs: dict[str, Job], tenant: Tenant) -> dict[str, Job]:
    """Only the jobs in scope: another tenant's job reads as "no such job"."""
    return jobs if tenant is None else {i: j for i, j in jobs.items() if j.tenant == tenant}


async def fetch_jobs(conn: aiosqlite.Connection, ids: Sequence[str]) -> dict[str, Job]:
    if not ids:
        return {}
    found: dict[str, Job] = {}
    for start in range(0, len(ids), 500):
        chunk = list(ids[start : start + 500])
        cursor = await conn.execute(
            f"SELECT * FROM jobs WHERE id IN ({_placeholders(chunk)})", chunk
        )
        found.update((row["id"], job_from_row(row)) for row in await cursor.fetchall())
    return found


async def apply_changes(
    conn: aiosqlite.Connection, changes: Sequence[Change], now: dt.datetime
) -> None:
    """Write running jobs' changes, their leases ending with them: one executemany per set
    of columns."""
    for columns, group in group_by_columns(changes).items():
        sets = ", ".join(f"{column} = :{column}" for column in columns)
        await conn.executemany(
            f"UPDATE jobs SET {sets}, worker_id = NULL, lease_expires_at = NULL, "
            "updated_at = :now WHERE id = :id",
            [
                {k: to_us(v) if isinstance(v, dt.datetime) else v for k, v in c.fields.items()}
                | {"now": to_us(now), "id": c.event.job_id}
                for c in group
            ],
        )


class SqliteJobs:
    def __init__(self, db: SqliteDb, queue_defaults: QueueConfig, rng: random.Random) -> None:
        self._db = db
        self._defaults = queue_defaults
        self._rng = rng

    async def submit(self, jobs: Sequence[NewJob], now: dt.datetime) -> list[SubmitResult]:
        now_us = to_us(now)
        async with self._db.tx() as conn:
            for tenant, name in sorted({queue_of(j) for j in jobs}):
                params = queue_params(self._defaults) | {
                    "name": name,
                    "tenant": tenant,
                    "now": now_us,
                }
                await conn.execute(INSERT_QUEUE_IF_MISSING, params)
            queues = await load_queues(conn, (queue_of(j) for j in jobs))
            results: list[SubmitResult | None] = []
            fresh: list[tuple[NewJob, QueueConfig]] = []
            seen_keys: dict[tuple[str, str, str], NewJob] = {}
            for index, new in enumerate(jobs):
                existing = await self._match_idempotent(conn, new, index, seen_keys)
                if existing is not None:
                    results.append(SubmitResult(existing, created=False))
                    continue
                if new.idempotency_key:
                    seen_keys[(new.tenant, new.queue, new.idempotency_key)] = new
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
                        "run_at": to_us(new.run_at),
                        "timeout_us": opt_span_us(new.timeout),
                        "expires_at": opt_to_us(new.run_at + ttl if ttl else None),
                        "idempotency_key": new.idempotency_key,
                        "correlation_id": new.correlation_id,
                        "trace_context": json.dumps(new.trace_context),
                        "now": now_us,
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
            await conn.executemany(INSERT_JOB, rows)
            await insert_events(conn, events)
            stored = await fetch_jobs(conn, [new.id for new, _ in fresh])
        fresh_iter = iter(fresh)
        return [
            r if r is not None else SubmitResult(stored[next(fresh_iter)[0].id], created=True)
            for r in results
        ]

    async def _match_idempotent(
        self,
        conn: aiosqlite.Connection,
        new: NewJob,
        index: int,
        seen: dict[tuple[str, str, str], NewJob],
    ) -> Job | None:
        if not new.idempotency_key:
            return None
        batch_duplicate(new, index, seen)
        key = (new.tenant, new.queue, new.idempotency_key)
        cursor = await conn.execute(
            "SELECT * FROM jobs WHERE tenant = ? AND queue = ? AND idempotency_key = ?", key
        )
        row = await cursor.fetchone()
        return idempotent_match(None if row is None else job_from_row(row), new)

    async def get(self, job_id: str, *, tenant: Tenant = None) -> Job | None:
        async with self._db.read() as conn:
            return _in_scope((await fetch_jobs(conn, [job_id])).get(job_id), tenant)

    async def page(
        self, flt: JobFilter, limit: int, after: str | None, *, tenant: Tenant = None
    ) -> Page:
        clauses, params = _filter_sql(flt)
        if tenant is not None:
            clauses.append("tenant = ?")
            params.append(tenant)
        if after:
            clauses.append("id < ?")
            params.append(after)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        async with self._db.read() as conn:
            cursor = await conn.execute(
                f"SELECT * FROM jobs {where} ORDER BY id DESC LIMIT ?", [*params, limit + 1]
            )
            rows = await cursor.fetchall()
        jobs = [job_from_row(r) for r in rows[:limit]]
        return Page(jobs, jobs[-1].id if len(rows) > limit else None)

    async def events(self, job_id: str) -> list[JobEvent]:
        async with self._db.read() as conn:
            cursor = await conn.execute(
                "SELECT * FROM job_events WHERE job_id = ? ORDER BY seq", (job_id,)
            )
            return [event_from_row(r) for r in await cursor.fetchall()]

    async def cancel(
        self, job_id: str, now: dt.datetime, reason: str, *, tenant: Tenant = None
    ) -> Job:
        async with self._db.tx() as conn:
            job = _in_scope((await fetch_jobs(conn, [job_id])).get(job_id), tenant)
            if job is None:
                raise NotFound(f"job {job_id} not found")
            change = cancel_change(job, now, reason)
            if change is not None:
                fields = {
                    k: to_us(v) if isinstance(v, dt.datetime) else v
                    for k, v in change.fields.items()
                }
                sets = ", ".join(f"{column} = :{column}" for column in fields)
                await conn.execute(
                    f"UPDATE jobs SET {sets}, updated_at = :now WHERE id = :id",
                    fields | {"now": to_us(now), "id": job_id},
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
        now_us = to_us(now)
        type_filter = f"AND type IN ({_placeholders(task_types)})" if task_types else ""
        async with self._db.tx() as conn:
            configs = await queues_named(conn, queues, tenant)
            open_queues = [(q, q.weight) for q in configs if not q.paused]
            leased: list[Job] = []
            for queue in weighted_order(open_queues, self._rng):
                room = max_jobs - len(leased)
                if room <= 0:
                    break
                if queue.concurrency_limit:
                    cursor = await conn.execute(
                        "SELECT count(*) FROM jobs"
                        " WHERE tenant = ? AND queue = ? AND state = 'running'",
                        (queue.tenant, queue.name),
                    )
                    running = (await cursor.fetchone())[0]
                    room = min(room, queue.concurrency_limit - running)
                    if room <= 0:
                        continue
                cursor = await conn.execute(
                    SELECT_LEASABLE.format(type_filter=type_filter),
                    [queue.tenant, queue.name, now_us, *task_types, room],
                )
                candidates = [job_from_row(r) for r in await cursor.fetchall()]
                if not candidates:
                    continue
                lease_until = to_us(now + queue.lease_timeout)
                await conn.executemany(
                    START_JOB, [(worker_id, lease_until, now_us, now_us, j.id) for j in candidates]
                )
                await insert_events(
                    conn,
                    (
                        transition_event(
                            job_id=j.id,
                            correlation_id=j.correlation_id or None,
                            queue=j.queue,
                            tenant=j.tenant,
                            kind=E.STARTED,
                            from_state=S.QUEUED,
                            to_state=S.RUNNING,
                            attempt=j.attempt + 1,
                            at=now,
                            worker_id=worker_id,
                            trace_context=j.trace_context or None,
                            **attempt_times(j, E.STARTED, S.QUEUED),
                        )
                        for j in candidates
                    ),
                )
                started = await fetch_jobs(conn, [j.id for j in candidates])
                leased.extend(started[j.id] for j in candidates)
            return leased

    async def _held(
        self,
        conn: aiosqlite.Connection,
        worker_id: str,
        leases: Sequence[LeaseRef],
        tenant: Tenant,
    ) -> dict[str, Job]:
        """The jobs behind `leases`, or StaleLease naming every lease the worker does not hold."""
        no_repeated_jobs(leases)
        jobs = _scoped(await fetch_jobs(conn, [lease.job_id for lease in leases]), tenant)
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
        now_us = to_us(now)
        async with self._db.tx() as conn:
            cursor = await conn.execute(
                "UPDATE workers SET last_heartbeat = ?, "
                "state = CASE WHEN state = 'lost' THEN 'active' ELSE state END "
                "WHERE id = ? RETURNING state",
                (now_us, worker_id),
            )
            row = await cursor.fetchone()
            if row is None:
                raise FailedPrecondition(f"worker {worker_id} is not registered")
            jobs = _scoped(await fetch_jobs(conn, [lease.job_id for lease in leases]), tenant)
            held, stale = partition_leases(jobs, worker_id, leases)
            queues = await load_queues(conn, (queue_of(j) for j in held))
            expiries = {j.id: now + queues[queue_of(j)].lease_timeout for j in held}
            await conn.executemany(
                "UPDATE jobs SET lease_expires_at = ? WHERE id = ?",
                [(to_us(until), job_id) for job_id, until in expiries.items()],
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
            await conn.execute(
                "UPDATE jobs SET progress = ?, progress_message = ?, updated_at = ? WHERE id = ?",
                (progress, message, to_us(now), lease.job_id),
            )
            return (await fetch_jobs(conn, [lease.job_id]))[lease.job_id]

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
            await apply_changes(conn, changes, now)
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
        now_us = to_us(now)
        async with self._db.tx() as conn:
            jobs = _scoped(await fetch_jobs(conn, [lease.job_id for lease in leases]), tenant)
            held, stale = partition_leases(jobs, worker_id, leases)
            # A released attempt does not count against max_attempts.
            await conn.executemany(
                "UPDATE jobs SET state = 'queued', attempt_base = attempt_base + 1, "
                "worker_id = NULL, lease_expires_at = NULL, run_at = ?, updated_at = ? "
                "WHERE id = ?",
                [(now_us, now_us, j.id) for j in held],
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
            return ReleaseResult(len(held), stale)

    async def promote_due(self, now: dt.datetime, limit: int) -> int:
        now_us = to_us(now)
        async with self._db.tx() as conn:
            cursor = await conn.execute(
                "SELECT id, queue, tenant, attempt, correlation_id, trace_context FROM jobs"
                " WHERE state = 'scheduled' AND run_at <= ? "
                "AND (expires_at IS NULL OR expires_at > ?) ORDER BY run_at LIMIT ?",
                (now_us, now_us, limit),
            )
            due = await cursor.fetchall()
            await conn.executemany(
                "UPDATE jobs SET state = 'queued', updated_at = ? WHERE id = ?",
                [(now_us, r["id"]) for r in due],
            )
            await insert_events(
                conn,
                (
                    transition_event(
                        job_id=r["id"],
                        correlation_id=r["correlation_id"] or None,
                        trace_context=json.loads(r["trace_context"]) or None,
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
            return len(due)

    async def reap_expired_leases(
        self, now: dt.datetime, limit: int, leader_since: dt.datetime | None = None
    ) -> list[Job]:
        grace, params = "", [to_us(now)]
        if leader_since is not None:
            grace = (
                " AND (tenant, queue) IN"
                " (SELECT tenant, name FROM queues WHERE ? + lease_timeout_us <= ?)"
            )
            params += [to_us(leader_since), to_us(now)]
        async with self._db.tx() as conn:
            cursor = await conn.execute(
                "SELECT * FROM jobs WHERE state = 'running' AND lease_expires_at <= ?"
                f"{grace} ORDER BY lease_expires_at LIMIT ?",
                (*params, limit),
            )
            expired = [job_from_row(r) for r in await cursor.fetchall()]
            queues = await load_queues(conn, (queue_of(j) for j in expired))
            changes = [lease_expiry_change(j, queues[queue_of(j)], now, self._rng) for j in expired]
            await apply_changes(conn, changes, now)
            await insert_events(conn, (c.event for c in changes))
            after = await fetch_jobs(conn, [j.id for j in expired])
        return [after[j.id] for j in expired]

    async def expire_unstarted(self, now: dt.datetime, limit: int) -> list[str]:
        now_us = to_us(now)
        async with self._db.tx() as conn:
            cursor = await conn.execute(
                "SELECT id, queue, tenant, state, attempt, correlation_id, trace_context FROM jobs"
                " WHERE state IN ('scheduled', 'queued') "
                "AND expires_at <= ? LIMIT ?",
                (now_us, limit),
            )
            rows = await cursor.fetchall()
            await conn.executemany(
                "UPDATE jobs SET state = 'expired', finished_at = ?, updated_at = ? WHERE id = ?",
                [(now_us, now_us, r["id"]) for r in rows],
            )
            await insert_events(
                conn,
                (
                    transition_event(
                        job_id=r["id"],
                        correlation_id=r["correlation_id"] or None,
                        trace_context=json.loads(r["trace_context"]) or None,
                        queue=r["queue"],
                        tenant=r["tenant"],
                        kind=E.EXPIRED,
                        from_state=S(r["state"]),
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
            cursor = await conn.execute(
                "DELETE FROM jobs WHERE id IN ("
                " SELECT j.id FROM jobs j JOIN queues q ON q.tenant = j.tenant AND q.name = j.queue"
                " WHERE j.finished_at IS NOT NULL AND j.finished_at < ? - q.retention_us"
                " LIMIT ?)",
                (to_us(now), limit),
            )
            deleted: int = cursor.rowcount
            return deleted

    async def _select_dead(
        self, conn: aiosqlite.Connection, selector: DeadLetterSelector, tenant: Tenant
    ) -> list[Job]:
        if selector.ids:
            jobs = await fetch_jobs(conn, list(selector.ids))
            seen = {i: j for i, j in jobs.items() if _in_scope(j, tenant) is not None}
            return checked_dead_letters(selector.ids, selector.queue, seen)
        sql, params = "SELECT * FROM jobs WHERE state = 'dead' AND queue = ?", [selector.queue]
        if tenant is not None:
            sql += " AND tenant = ?"
            params.append(tenant)
        cursor = await conn.execute(sql, params)
        return [job_from_row(r) for r in await cursor.fetchall()]

    async def replay_dead(
        self, selector: DeadLetterSelector, now: dt.datetime, *, tenant: Tenant = None
    ) -> int:
        now_us = to_us(now)
        async with self._db.tx() as conn:
            dead = await self._select_dead(conn, selector, tenant)
            # A replayed job gets its full attempt budget again; attempt stays monotonic
            # so that fencing tokens never repeat.
            await conn.executemany(
                "UPDATE jobs SET state = 'queued', attempt_base = attempt, run_at = ?, "
                "finished_at = NULL, result = NULL, updated_at = ? WHERE id = ?",
                [(now_us, now_us, j.id) for j in dead],
            )
            await insert_events(
                conn,
                (job_event(j, E.REPLAYED, S.QUEUED, now, from_state=S.DEAD) for j in dead),
            )
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
            await conn.executemany("DELETE FROM jobs WHERE id = ?", [(j.id,) for j in dead])
            return len(dead)


def _filter_sql(flt: JobFilter) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if flt.queue:
        clauses.append("queue = ?")
        params.append(flt.queue)
    if flt.states:
        clauses.append(f"state IN ({_placeholders(flt.states)})")
        params.extend(s.value for s in flt.states)
    if flt.type:
        clauses.append("type = ?")
        params.append(flt.type)
    if flt.tenant:
        clauses.append("tenant = ?")
        params.append(flt.tenant)
    if flt.created_after:
        clauses.append("created_at > ?")
        params.append(to_us(flt.created_after))
    if flt.created_before:
        clauses.append("created_at < ?")
        params.append(to_us(flt.created_before))
    return clauses, params
