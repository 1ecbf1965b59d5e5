"""The job repository, written once over the dialect port (`jobq.store.sql.port`).

Every state change is one transaction that also writes its job_events rows; what each
change writes is decided in `jobq.store.changes`. Batches are set-based: one write per
batch for jobs and their events, never a statement per job, and what a statement just
changed is built from what was read, not read back.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from collections.abc import Iterable, Sequence
from typing import Any, Literal, overload

from jobq.core.errors import FailedPrecondition, InvalidArgument, NotFound, StaleLease
from jobq.core.limits import Candidate, LeaseLimits, within_caps
from jobq.core.model import (
    Ended,
    HeartbeatResult,
    HeldJob,
    Job,
    JobEvent,
    JobFilter,
    LeasedJob,
    LeaseRef,
    NewJob,
    Outcome,
    QueueConfig,
    ReleaseResult,
    SubmitResult,
    WorkerState,
)
from jobq.core.scheduling import weighted_order
from jobq.core.states import JobState
from jobq.ids import new_id
from jobq.store.base import DeadLetterSelector, Page, Tenant
from jobq.store.changes import (
    DISCARD,
    END_COLUMNS,
    EXPIRE,
    PROMOTE,
    Change,
    batch_duplicate,
    cancel_change,
    check_submitted,
    checked_dead_letters,
    end_columns,
    ended,
    ended_as,
    idempotent_match,
    lease_expiry_change,
    no_repeated_jobs,
    outcome_change,
    partition_leases,
    release_change,
    replay_change,
    stale_reason,
    started_rows,
    submitted_job,
)
from jobq.store.sql.port import Dialect
from jobq.store.sql.workflows import QUEUE_DEFAULT_COLUMNS, follow_up

QueueKey = tuple[str, str]  # (tenant, name)

# A queue with per-key limits scans this many rows past what the lease asks for, at most
# KEYED_SCAN_MAX in all, so that a key at its cap does not hide the next keys' jobs.
KEYED_SCAN_EXTRA = 200
KEYED_SCAN_MAX = 1000
# The advisory lock a tenant-wide cap is counted under: not a queue name, so never a queue's.
TENANT_LOCK = "*"


def queue_of(job: Job | NewJob | LeasedJob | HeldJob) -> QueueKey:
    return (job.tenant, job.queue)


def _order(job: LeasedJob) -> tuple[int, dt.datetime | None, str]:
    """A lease's jobs in the order the queue hands them out."""
    return (-job.priority, job.run_at, job.id)


def event_row(event: JobEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "job_id": event.job_id,
        "queue": event.queue,
        "tenant": event.tenant,
        "kind": event.kind.value,
        "from_state": event.from_state.value if event.from_state else None,
        "to_state": event.to_state.value if event.to_state else None,
        "attempt": event.attempt,
        "at": event.at,
        "details": event.details,
    }


def job_row(job: Job) -> dict[str, Any]:
    """The columns a submit inserts; the others take their defaults."""
    return {
        "id": job.id,
        "queue": job.queue,
        "tenant": job.tenant,
        "type": job.type,
        "payload": job.payload,
        "state": job.state.value,
        "priority": job.priority,
        "max_attempts": job.max_attempts,
        "run_at": job.run_at,
        "timeout": job.timeout,
        "expires_at": job.expires_at,
        "idempotency_key": job.idempotency_key,
        "correlation_id": job.correlation_id,
        "trace_context": job.trace_context,
        "rate_key": job.rate_key,
        "concurrency_key": job.concurrency_key,
    }


def submit_row(job: Job) -> dict[str, Any]:
    """A new job's row and the id of its `submitted` event, which the submit's SQL derives
    from the row (ADR 0023). The id is drawn here, after the job's, as the event's always
    was: UUIDv7 from the process's monotonic generator."""
    row = job_row(job)
    row["event_id"] = new_id()
    return row


def end_row(job: Job) -> dict[str, Any]:
    row: dict[str, Any] = {column: getattr(job, column) for column in END_COLUMNS}
    row["state"] = job.state.value
    row["id"] = job.id
    return row


def _in_scope(job: Job | None, tenant: Tenant) -> Job | None:
    return job if job is not None and (tenant is None or job.tenant == tenant) else None


def _scoped(jobs: dict[str, Job], tenant: Tenant) -> dict[str, Job]:
    """Only the jobs in scope: another tenant's job reads as "no such job"."""
    return jobs if tenant is None else {i: j for i, j in jobs.items() if j.tenant == tenant}


class SqlJobs:
    def __init__(self, dialect: Dialect, queue_defaults: QueueConfig, rng: random.Random) -> None:
        self._d = dialect
        self._q = dialect.q
        self._defaults = queue_defaults
        self._rng = rng

    # -- reading ---------------------------------------------------------------------

    async def _jobs(self, conn: Any, ids: Iterable[str], *, lock: bool = False) -> dict[str, Job]:
        wanted = sorted({i for i in ids if self._d.valid_id(i)})
        if not wanted:
            return {}
        query = self._q.JOBS_BY_ID_LOCKED if lock else self._q.JOBS_BY_ID
        rows = await self._d.fetch(conn, query, {"ids": wanted})
        return {(job := self._d.job(row)).id: job for row in rows}

    async def _queues(self, conn: Any, keys: Iterable[QueueKey]) -> dict[QueueKey, QueueConfig]:
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        rows = await self._d.fetch(
            conn,
            self._q.QUEUES_BY_KEY,
            {"tenants": [t for t, _ in wanted], "names": [n for _, n in wanted]},
        )
        return {(q.tenant, q.name): q for q in map(self._d.queue, rows)}

    async def get(self, job_id: str, *, tenant: Tenant = None) -> Job | None:
        async with self._d.read() as conn:
            return _in_scope((await self._jobs(conn, [job_id])).get(job_id), tenant)

    async def page(
        self, flt: JobFilter, limit: int, after: str | None, *, tenant: Tenant = None
    ) -> Page:
        params: dict[str, Any] = {
            "queue": flt.queue,
            "states": [s.value for s in flt.states],
            "type": flt.type,
            "tenant": flt.tenant,
            "created_after": flt.created_after,
            "created_before": flt.created_before,
        }
        clauses = [self._q.FILTERS[name] for name, value in params.items() if value]
        if tenant is not None:
            clauses.append(self._q.FILTERS["scope"])
            params["scope"] = tenant
        if after:
            if not self._d.valid_id(after):
                raise InvalidArgument("page_token", "is not a token from a previous page")
            clauses.append(self._q.AFTER)
            params["after"] = after
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        async with self._d.read() as conn:
            rows = await self._d.fetch(
                conn, self._q.PAGE.format(where=where), params | {"limit": limit + 1}
            )
        jobs = [self._d.job(r) for r in rows[:limit]]
        return Page(jobs, jobs[-1].id if len(rows) > limit else None)

    async def events(self, job_id: str) -> list[JobEvent]:
        if not self._d.valid_id(job_id):
            return []
        async with self._d.read() as conn:
            rows = await self._d.fetch(conn, self._q.EVENTS_OF_JOB, {"id": job_id})
            return [self._d.event(r) for r in rows]

    # -- submitting ------------------------------------------------------------------

    async def submit(self, jobs: Sequence[NewJob], now: dt.datetime) -> list[SubmitResult]:
        try:
            return await self._submit(jobs, now)
        except self._d.unique_violation:
            # Another replica inserted the same idempotency key between our check and our
            # insert; running again finds its job.
            return await self._submit(jobs, now)

    async def _submit(self, jobs: Sequence[NewJob], now: dt.datetime) -> list[SubmitResult]:
        keys = sorted({queue_of(j) for j in jobs})
        defaults = {c: getattr(self._defaults, c) for c in QUEUE_DEFAULT_COLUMNS}
        async with self._d.tx() as conn:
            rows = await self._d.fetch(
                conn,
                self._q.ENSURE_QUEUES,
                defaults
                | {"tenants": [t for t, _ in keys], "names": [n for _, n in keys], "now": now},
            )
            queues = {(q.tenant, q.name): q for q in map(self._d.queue, rows)}
            if len(queues) < len(keys):
                # A queue another transaction created while this statement ran: its insert
                # waited for that one to commit, but the statement's snapshot predates it.
                # A new statement sees it.
                queues = await self._queues(conn, keys)
            results: list[SubmitResult] = []
            fresh: list[Job] = []
            seen: dict[tuple[str, str, str], NewJob] = {}
            for index, new in enumerate(jobs):
                existing = await self._match_idempotent(conn, new, index, seen)
                if existing is not None:
                    results.append(SubmitResult(existing, created=False))
                    continue
                if new.idempotency_key:
                    seen[(new.tenant, new.queue, new.idempotency_key)] = new
                job = submitted_job(new, queues[queue_of(new)], now)
                fresh.append(job)
                results.append(SubmitResult(job, created=True))
            if fresh:
                check_submitted(fresh)
                await self._d.write(
                    conn,
                    self._q.SUBMIT,
                    {"now": now},
                    jobs=[submit_row(j) for j in fresh],
                    wake=_wake(j for j in fresh if j.state is JobState.QUEUED),
                )
        return results

    async def _match_idempotent(
        self, conn: Any, new: NewJob, index: int, seen: dict[tuple[str, str, str], NewJob]
    ) -> Job | None:
        if not new.idempotency_key:
            return None
        batch_duplicate(new, index, seen)
        rows = await self._d.fetch(
            conn,
            self._q.JOB_BY_KEY,
            {"tenant": new.tenant, "queue": new.queue, "key": new.idempotency_key},
        )
        return idempotent_match(self._d.job(rows[0]) if rows else None, new)

    # -- cancelling ------------------------------------------------------------------

    async def cancel(
        self, job_id: str, now: dt.datetime, reason: str, *, tenant: Tenant = None
    ) -> Job:
        async with self._d.tx() as conn:
            job = _in_scope((await self._jobs(conn, [job_id], lock=True)).get(job_id), tenant)
            if job is None:
                raise NotFound(f"job {job_id} not found")
            change = cancel_change(job, now, reason)
            if change is None:
                return job
            fields = {k: v for k, v in change.fields.items() if k != "state"}
            after = dataclasses.replace(
                job, **fields, state=JobState(change.fields.get("state", job.state)), updated_at=now
            )
            await self._d.execute(
                conn,
                self._q.SET_CANCEL,
                {
                    "id": job_id,
                    "state": after.state.value,
                    "finished_at": after.finished_at,
                    "cancel_requested": after.cancel_requested,
                    "now": now,
                },
            )
            await self._d.write(conn, self._q.EVENTS, {}, events=[event_row(change.event)], wake=[])
            await follow_up(self._d, conn, [after], now)
            return after

    # -- the worker protocol ---------------------------------------------------------

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
        async with self._d.tx() as conn:
            rows = await self._d.fetch(
                conn, self._q.QUEUES_NAMED, {"names": sorted(set(queues)), "tenant": tenant}
            )
            open_queues = [q for q in map(self._d.queue, rows) if not q.paused]
            if limits is None:
                order = weighted_order([(q, q.weight) for q in open_queues], self._rng)
            else:
                order = limits.order(open_queues)
            empty: set[QueueKey] = set()
            tenant_caps = {}
            if limits is not None:
                tenant_caps = {
                    t: cap
                    for t in sorted({q.tenant for q in order})
                    if (cap := limits.tenant_cap(t))
                }
            if tenant_caps or any(q.limited for q in order):
                started = await self._lease_limited(
                    conn, worker_id, order, max_jobs, now, task_types, limits, empty, tenant_caps
                )
            else:
                started = []
                for queue in order:
                    room = max_jobs - len(started)
                    if room <= 0:
                        break
                    params = self._lease_params(queue, worker_id, now, room, task_types)
                    rows = await self._d.fetch(conn, self._q.LEASE, params)
                    if not rows:
                        empty.add((queue.tenant, queue.name))
                    until = params["lease_until"]
                    started.extend(sorted((self._d.leased(r, until) for r in rows), key=_order))
            if limits is not None:
                counts: dict[QueueKey, int] = {}
                for job in started:
                    counts[queue_of(job)] = counts.get(queue_of(job), 0) + 1
                limits.started(order, counts, empty)
            if not started:
                return []
            await self._d.write(
                conn, self._q.EVENTS, {}, events=started_rows(started, now, worker_id), wake=[]
            )
            if lean:
                return started
            # A caller that wants whole jobs (an older worker, jq-ctl, tests) reads them in
            # the lease's transaction: as the lease left them, in the lease's order.
            whole = await self._jobs(conn, (j.id for j in started))
            return [whole[j.id] for j in started]

    @staticmethod
    def _lease_params(
        queue: QueueConfig, worker_id: str, now: dt.datetime, limit: int, types: Sequence[str]
    ) -> dict[str, Any]:
        return {
            "queue": queue.name,
            "tenant": queue.tenant,
            "now": now,
            "limit": limit,
            "worker": worker_id,
            "lease_until": now + queue.lease_timeout,
            "types": list(types),
        }

    async def _lease_limited(
        self,
        conn: Any,
        worker_id: str,
        order: Sequence[QueueConfig],
        max_jobs: int,
        now: dt.datetime,
        task_types: Sequence[str],
        limits: LeaseLimits | None,
        empty: set[QueueKey],
        tenant_caps: dict[str, int],
    ) -> list[LeasedJob]:
        """Candidates (locked), minus those over a cap (counted here, exactly), minus those
        the rate limiter holds back (one call for the whole batch); then only the rest are
        claimed. Rows not claimed stay QUEUED and unlocked at commit (ADR 0017)."""
        # Every replica takes the locks in one order (tenants, then queues, by name), so two
        # leases over the same queues in different orders cannot deadlock; and every replica
        # counting a cap counts under its lock: exact.
        for tenant in sorted(tenant_caps):
            await self._d.lock_queue(conn, tenant, TENANT_LOCK)
        capped = {
            (q.tenant, q.name) for q in order if q.concurrency_limit or q.key_concurrency_limit
        }
        for tenant, name in sorted(capped):
            await self._d.lock_queue(conn, tenant, name)
        tenant_room = {}
        for tenant, cap in tenant_caps.items():
            counted = await self._d.fetch(conn, self._q.RUNNING_IN_TENANT, {"tenant": tenant})
            tenant_room[tenant] = cap - counted[0]["n"]
        candidates: list[tuple[Candidate, QueueConfig]] = []
        held: dict[QueueKey, int] = {}  # capped queues' running jobs before this lease
        certain = 0  # candidates no rate can hold back: enough of them ends the scan
        for queue in order:
            if certain >= max_jobs:
                break
            keyed = bool(queue.key_concurrency_limit or queue.key_rate_limit)
            # A key at its cap must not hide other keys' jobs behind it: scan further.
            scan = min(max_jobs + KEYED_SCAN_EXTRA, KEYED_SCAN_MAX) if keyed else max_jobs
            rows = await self._d.fetch(
                conn,
                self._q.LEASE_CANDIDATES,
                self._lease_params(queue, worker_id, now, scan, task_types),
            )
            found = [
                Candidate(r["id"] if isinstance(r["id"], str) else str(r["id"]), queue.tenant,
                          queue.name, r["rate_key"], r["concurrency_key"])
                for r in rows
            ]  # fmt: skip
            # Counted even when nothing waits (given a dispatcher to report to): the slots
            # in use must show their fall to 0, not the count of the last lease that started
            # something.
            if (queue.tenant, queue.name) in capped and (found or limits is not None):
                counted = await self._d.fetch(
                    conn, self._q.RUNNING_BY_KEY, {"tenant": queue.tenant, "queue": queue.name}
                )
                running = {r["concurrency_key"]: r["n"] for r in counted}
                held[(queue.tenant, queue.name)] = sum(running.values())
                found, dropped = within_caps(found, queue, running)
                if limits is not None:
                    for reason, count in dropped.items():
                        limits.throttled(queue.name, reason, count)
            if queue.tenant in tenant_room:
                room = max(0, tenant_room[queue.tenant])
                if len(found) > room and limits is not None:
                    limits.throttled(queue.name, "tenant_cap", len(found) - room)
                found = found[:room]
                tenant_room[queue.tenant] -= len(found[:max_jobs])
            if not found:
                empty.add((queue.tenant, queue.name))
            for candidate in found[:max_jobs]:
                candidates.append((candidate, queue))
                if not (queue.rate_limit or (queue.key_rate_limit and candidate.rate_key)):
                    certain += 1
        if not candidates:
            if limits is not None:
                for key, before in held.items():
                    limits.running(key[1], before)
            return []
        if limits is None:
            chosen = list(range(min(max_jobs, len(candidates))))
        else:
            chosen = await limits.admit(candidates, max_jobs)
        by_queue: dict[QueueKey, tuple[QueueConfig, list[str]]] = {}
        for index in chosen:
            candidate, queue = candidates[index]
            by_queue.setdefault((queue.tenant, queue.name), (queue, []))[1].append(candidate.job_id)
        started: list[LeasedJob] = []
        for queue, ids in by_queue.values():
            params = self._lease_params(queue, worker_id, now, len(ids), task_types)
            rows = await self._d.fetch(conn, self._q.LEASE_IDS, params | {"ids": ids})
            started.extend(self._d.leased(r, params["lease_until"]) for r in rows)
        if limits is not None:
            for key, before in held.items():
                limits.running(key[1], before + sum(queue_of(j) == key for j in started))
        return sorted(started, key=_order)

    async def _held(
        self, conn: Any, worker_id: str, leases: Sequence[LeaseRef], tenant: Tenant
    ) -> dict[str, Job]:
        """The jobs behind `leases`, locked, or StaleLease naming every lease not held."""
        no_repeated_jobs(leases)
        jobs = _scoped(await self._jobs(conn, (le.job_id for le in leases), lock=True), tenant)
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
        valid = [lease for lease in leases if self._d.valid_id(lease.job_id)]
        async with self._d.tx() as conn:
            # One statement touches the worker and extends every lease it still holds, and
            # answers in one row unless a cancel was requested; only when some lease was not
            # extended are the named jobs read, to say why each one is stale, so a lease that
            # went stale a moment ago never stops the others.
            rows = await self._d.fetch(
                conn,
                self._q.HEARTBEAT,
                {
                    "ids": [lease.job_id for lease in valid],
                    "attempts": [lease.attempt for lease in valid],
                    "worker": worker_id,
                    "tenant": tenant,
                    "now": now,
                },
            )
            # The summary is the row with a count (UNION ALL promises no order).
            summary = next(r for r in rows if r["extended"] is not None)
            cancels = [r["cancel"] for r in rows if r["extended"] is None]
            if summary["worker_state"] is None:
                raise FailedPrecondition(f"worker {worker_id} is not registered")
            stale: tuple[Any, ...] = ()
            if summary["extended"] < len(leases):
                jobs = _scoped(await self._jobs(conn, (le.job_id for le in leases)), tenant)
                _, stale = partition_leases(jobs, worker_id, leases)
        return HeartbeatResult(
            cancel_job_ids=tuple(map(str, cancels)),
            drain=summary["worker_state"] == WorkerState.DRAINING.value,
            lease_expires_at=self._d.decode_time(summary["until"]),
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
        async with self._d.tx() as conn:
            job = (await self._held(conn, worker_id, [lease], tenant))[lease.job_id]
            await self._d.execute(
                conn,
                self._q.PROGRESS,
                {"id": lease.job_id, "progress": progress, "message": message, "now": now},
            )
            return dataclasses.replace(
                job, progress=progress, progress_message=message, updated_at=now
            )

    async def _end(
        self, conn: Any, pairs: Sequence[tuple[Job, Change]], now: dt.datetime
    ) -> list[Job]:
        """Write changes that end (or reset) running jobs' leases, with their events, in
        one write; the jobs as they now are."""
        after = [ended(job, change, now) for job, change in pairs]
        if after:
            await self._d.write(
                conn,
                self._q.END_LEASES,
                {"now": now},
                jobs=[end_row(j) for j in after],
                events=[event_row(change.event) for _, change in pairs],
                wake=_wake(j for j in after if j.state is JobState.QUEUED),
            )
            await follow_up(self._d, conn, after, now)
        return after

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
        leases = [o.lease for o in outcomes]
        no_repeated_jobs(leases)
        ids = sorted({le.job_id for le in leases if self._d.valid_id(le.job_id)})
        async with self._d.tx() as conn:
            # Only what the fencing check, the decision and the end of the lease read
            # (HeldJob), and no Job is built or copied per outcome: whole rows and their
            # dataclasses.replace were a third of ReportOutcomes (ADR 0024).
            rows = await self._d.fetch(conn, self._q.HELD_LOCKED, {"ids": ids}) if ids else []
            held = {
                job.id: job
                for job in map(self._d.held, rows)
                if tenant is None or job.tenant == tenant
            }
            stale = {
                lease.job_id: why
                for lease in leases
                if (why := stale_reason(held.get(lease.job_id), worker_id, lease)) is not None
            }
            if stale:
                raise StaleLease(stale)
            queues = await self._queues(conn, (queue_of(j) for j in held.values()))
            columns, events, ended = [], [], []
            for outcome in outcomes:
                job = held[outcome.lease.job_id]
                change = outcome_change(job, queues[queue_of(job)], outcome, now, self._rng)
                columns.append(end_columns(job, change))
                events.append(event_row(change.event))
                ended.append(ended_as(job, change))
            if ended:
                await self._d.write(
                    conn,
                    self._q.END_LEASES,
                    {"now": now},
                    jobs=columns,
                    events=events,
                    wake=_wake(e for e in ended if e.state is JobState.QUEUED),
                )
                await follow_up(self._d, conn, ended, now)
            if lean:
                return ended
            # Whole jobs (CompleteJob, FailJob, an older worker): as this transaction left them.
            whole = await self._jobs(conn, (e.id for e in ended))
            return [whole[e.id] for e in ended]

    async def release(
        self,
        worker_id: str,
        leases: Sequence[LeaseRef],
        now: dt.datetime,
        *,
        tenant: Tenant = None,
    ) -> ReleaseResult:
        no_repeated_jobs(leases)
        async with self._d.tx() as conn:
            jobs = _scoped(await self._jobs(conn, (le.job_id for le in leases), lock=True), tenant)
            held, stale = partition_leases(jobs, worker_id, leases)
            await self._end(conn, [(j, release_change(j, worker_id, now)) for j in held], now)
            return ReleaseResult(len(held), stale)

    # -- the leader's maintenance ----------------------------------------------------

    async def promote_due(self, now: dt.datetime, limit: int) -> int:
        async with self._d.tx() as conn:
            rows = await self._d.fetch(conn, self._q.PROMOTE, {"now": now, "limit": limit})
            due = [self._d.job(r) for r in rows]
            await self._d.write(
                conn,
                self._q.EVENTS,
                {},
                events=[event_row(PROMOTE.event(j, now, was=PROMOTE.from_states[0])) for j in due],
                wake=_wake(due),
            )
            return len(due)

    async def reap_expired_leases(
        self, now: dt.datetime, limit: int, leader_since: dt.datetime | None = None
    ) -> list[Job]:
        params: dict[str, Any] = {"now": now, "limit": limit}
        query = self._q.EXPIRED_LEASES
        if leader_since is not None:
            query = self._q.EXPIRED_LEASES_AFTER_GRACE
            params["leader_since"] = leader_since
        async with self._d.tx() as conn:
            expired = [self._d.job(r) for r in await self._d.fetch(conn, query, params)]
            queues = await self._queues(conn, (queue_of(j) for j in expired))
            pairs = [
                (j, lease_expiry_change(j, queues[queue_of(j)], now, self._rng)) for j in expired
            ]
            return await self._end(conn, pairs, now)

    async def expire_unstarted(self, now: dt.datetime, limit: int) -> list[str]:
        async with self._d.tx() as conn:
            rows = await self._d.fetch(conn, self._q.EXPIRABLE, {"now": now, "limit": limit})
            gone = [self._d.job(r) for r in rows]
            if gone:
                await self._d.execute(
                    conn, self._q.EXPIRE, {"ids": [j.id for j in gone], "now": now}
                )
                await self._d.write(
                    conn,
                    self._q.EVENTS,
                    {},
                    events=[event_row(EXPIRE.event(j, now)) for j in gone],
                    wake=[],
                )
                expired = [dataclasses.replace(j, state=JobState.EXPIRED) for j in gone]
                await follow_up(self._d, conn, expired, now)
            return [j.queue for j in gone]

    async def delete_finished(self, now: dt.datetime, limit: int) -> int:
        async with self._d.tx() as conn:
            return await self._d.execute(
                conn, self._q.DELETE_FINISHED, {"now": now, "limit": limit}
            )

    async def _select_dead(
        self, conn: Any, selector: DeadLetterSelector, tenant: Tenant
    ) -> list[Job]:
        if selector.ids:
            jobs = await self._jobs(conn, selector.ids, lock=True)
            seen = {i: j for i, j in jobs.items() if _in_scope(j, tenant) is not None}
            return checked_dead_letters(selector.ids, selector.queue, seen)
        rows = await self._d.fetch(
            conn, self._q.DEAD_OF_QUEUE, {"queue": selector.queue, "tenant": tenant}
        )
        return [self._d.job(r) for r in rows]

    async def replay_dead(
        self, selector: DeadLetterSelector, now: dt.datetime, *, tenant: Tenant = None
    ) -> int:
        async with self._d.tx() as conn:
            dead = await self._select_dead(conn, selector, tenant)
            await self._end(conn, [(j, replay_change(j, now)) for j in dead], now)
            return len(dead)

    async def discard_dead(
        self, selector: DeadLetterSelector, now: dt.datetime, *, tenant: Tenant = None
    ) -> int:
        async with self._d.tx() as conn:
            dead = await self._select_dead(conn, selector, tenant)
            if dead:
                events = [event_row(DISCARD.event(j, now)) for j in dead]
                await self._d.write(conn, self._q.EVENTS, {}, events=events, wake=[])
                # Before the delete takes their edges: a discarded node never succeeds.
                lost = [dataclasses.replace(j, state=JobState.CANCELLED) for j in dead]
                await follow_up(self._d, conn, lost, now)
                await self._d.execute(conn, self._q.DELETE_JOBS, {"ids": [j.id for j in dead]})
            return len(dead)


def _wake(jobs: Iterable[Job | Ended]) -> list[dict[str, str]]:
    """One wake-up row per queue that has new leasable work."""
    return [{"queue": q} for q in sorted({j.queue for j in jobs})]
