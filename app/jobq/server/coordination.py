"""What the service asks of coordination: status cache, change fan-out, presence, counters.

Each method is one guarded call (jobq.coord.guard): with Redis down it answers "not known"
and the service asks the database instead. Nothing here decides a job's fate; the store
does, fenced by the attempt (ADR 0002, ADR 0015).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence

from jobq.coord.base import CoordUnavailable
from jobq.coord.guard import GuardedCoordinator
from jobq.coord.jobs import decode_job, encode_job
from jobq.core.model import Ended, Job, LeasedJob, LeaseRef, WorkerInfo, WorkerState
from jobq.observability.metrics import ServerMetrics
from jobq.server.notify import Notifier
from jobq.store.base import Tenant

__all__ = ["Coordination"]

log = logging.getLogger("jobq.coord")

RESUBSCRIBE_EVERY = 1.0


def _holder(job_id: str, attempt: int) -> str:
    return f"{job_id}:{attempt}"


def _queue_key(queue: str) -> str:
    # By queue name across tenants, as the gauges are (jq_job_queue_depth{queue}), so that a
    # heartbeat, which names leases but not their tenants, can renew them.
    return f"inflight:queue:{queue}"


def _worker_key(worker_id: str) -> str:
    return f"inflight:worker:{worker_id}"


class Coordination:
    def __init__(
        self, guarded: GuardedCoordinator, metrics: ServerMetrics, cache_ttl: dt.timedelta
    ) -> None:
        self.guarded = guarded
        self._metrics = metrics
        self._ttl = cache_ttl.total_seconds()
        # One database read per job at a time on this replica, however many watchers wake.
        self._loading: dict[tuple[str, Tenant], asyncio.Future[Job | None]] = {}

    # --- status cache ------------------------------------------------------------------

    async def job(
        self, job_id: str, tenant: Tenant, load: Callable[[], Awaitable[Job | None]]
    ) -> Job | None:
        """The job through the cache; `load` reads it from the store (in `tenant`)."""
        key = f"job:{job_id}"
        if not self.guarded.shared:
            # In-process: a replica's own cache would miss other replicas' changes (with
            # several servers on one PostgreSQL and no Redis); the store is asked every time.
            return await load()
        if self.guarded.down:
            self._metrics.status_cache.labels("bypass").inc()
            return await load()
        backend = self.guarded.backend
        entry = await self.guarded.call("cache_get", lambda: backend.cache_get(key), None)
        job = decode_job(entry.value) if entry is not None and entry.value is not None else None
        if job is not None:
            self._metrics.status_cache.labels("hit").inc()
            # The cache is shared by every tenant: its copy is served only in the job's own.
            return job if tenant is None or job.tenant == tenant else None
        self._metrics.status_cache.labels("miss").inc()
        flight = (job_id, tenant)
        pending = self._loading.get(flight)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Job | None] = asyncio.get_running_loop().create_future()
        self._loading[flight] = future
        try:
            job = await load()
            if job is not None and entry is not None:
                # Still in flight until the cache holds it: a reader that missed after the
                # load but before the put would read the store again (a herd per change).
                # The put carries the version read before the load: refused if the job
                # changed since, kept (for every other reader) otherwise.
                value, version = encode_job(job), entry.version
                await self.guarded.call(
                    "cache_put",
                    lambda: backend.cache_put(key, value, self._ttl, version),
                    None,
                )
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: only waiters that exist re-raise it
            raise
        finally:
            self._loading.pop(flight, None)
        future.set_result(job)
        return job

    async def jobs_changed(self, job_ids: Iterable[str]) -> None:
        """Invalidate the jobs' cached status and tell every replica's watchers."""
        ids = sorted(set(job_ids))
        if not ids:
            return
        keys = [f"job:{i}" for i in ids]
        backend = self.guarded.backend
        await self.guarded.call("cache_invalidate", lambda: backend.cache_invalidate(keys), None)
        if self.guarded.shared:
            await self.guarded.call("publish", lambda: backend.publish_jobs_changed(ids), None)

    async def follow_changes(self, notifier: Notifier) -> None:
        """Wake this replica's watchers for changes any replica announces; until cancelled."""
        if not self.guarded.shared:
            return  # in-process: the service wakes its own watchers

        def woken(ids: list[str]) -> None:
            self._metrics.job_changes_received.inc(len(ids))
            self.guarded.subscribed()
            notifier.jobs_changed(ids)

        while True:
            try:
                await self.guarded.backend.subscribe_jobs_changed(woken)
            except CoordUnavailable as exc:
                self.guarded.subscription_lost(exc)
            # Changes missed while unsubscribed are still seen: watchers also look again on
            # their poll interval, through the cache (its TTL bounds the staleness).
            await asyncio.sleep(RESUBSCRIBE_EVERY)

    # --- presence ------------------------------------------------------------------------

    async def present(self, worker_id: str, ttl: dt.timedelta) -> None:
        backend = self.guarded.backend
        seconds = ttl.total_seconds()
        await self.guarded.call(
            "presence_mark", lambda: backend.presence_mark(worker_id, seconds), None
        )

    async def gone(self, worker_id: str) -> None:
        backend = self.guarded.backend
        await self.guarded.call("presence_clear", lambda: backend.presence_clear(worker_id), None)

    async def with_presence(self, workers: list[WorkerInfo]) -> list[WorkerInfo]:
        """Liveness from presence keys; the database's own (last heartbeat) when Redis is
        down. A worker that deregistered (STOPPED) stays stopped either way."""
        if not self.guarded.shared:
            return workers  # in-process presence sees only this replica's heartbeats
        backend = self.guarded.backend
        live = await self.guarded.call("presence_live", backend.presence_live, None)
        if live is None:
            return workers
        out = []
        for worker in workers:
            state = worker.state
            if state is WorkerState.LOST and worker.id in live:
                state = WorkerState.ACTIVE
            elif state in (WorkerState.ACTIVE, WorkerState.DRAINING) and worker.id not in live:
                state = WorkerState.LOST
            out.append(worker if state is worker.state else _with_state(worker, state))
        return out

    # --- in-flight counters: slots without a limit, expiring with their lease ------------

    async def leased(
        self, worker_id: str, jobs: Sequence[Job | LeasedJob], now: dt.datetime
    ) -> None:
        by_key: dict[str, list[str]] = {}
        ttl = 0.0
        for job in jobs:
            holder = _holder(job.id, job.attempt)
            by_key.setdefault(_worker_key(worker_id), []).append(holder)
            by_key.setdefault(_queue_key(job.queue), []).append(holder)
            if job.lease_expires_at is not None:
                ttl = max(ttl, (job.lease_expires_at - now).total_seconds())
        await self._each(by_key, "slots_acquire", max(ttl, 1.0))

    async def renewed(
        self, worker: WorkerInfo, leases: Sequence[LeaseRef], expires: dt.datetime | None,
        now: dt.datetime,
    ) -> None:  # fmt: skip
        """Heartbeat: the leases' counters expire with their extended lease, in the worker's
        key and in each of its queues' (a lease is in one of them; the others ignore it)."""
        if not leases or expires is None:
            return
        holders = [_holder(lease.job_id, lease.attempt) for lease in leases]
        ttl = max((expires - now).total_seconds(), 1.0)
        backend = self.guarded.backend
        for key in (_worker_key(worker.id), *(_queue_key(q) for q in worker.queues)):

            async def renew(key: str = key) -> int:
                return await backend.slots_renew(key, holders, ttl)

            await self.guarded.call("slots_renew", renew, 0)

    async def finished(self, worker_id: str, jobs: Sequence[tuple[LeaseRef, Job | Ended]]) -> None:
        by_key: dict[str, list[str]] = {}
        for lease, job in jobs:
            holder = _holder(lease.job_id, lease.attempt)
            by_key.setdefault(_worker_key(worker_id), []).append(holder)
            by_key.setdefault(_queue_key(job.queue), []).append(holder)
        await self._each(by_key, "slots_release", 0.0)

    async def released(self, worker_id: str, leases: Sequence[LeaseRef]) -> None:
        holders = [_holder(lease.job_id, lease.attempt) for lease in leases]
        if holders:
            await self._each({_worker_key(worker_id): holders}, "slots_release", 0.0)

    async def _each(self, by_key: dict[str, list[str]], operation: str, ttl: float) -> None:
        backend = self.guarded.backend
        for key, holders in by_key.items():

            async def one(key: str = key, holders: list[str] = holders) -> None:
                if operation == "slots_acquire":
                    await backend.slots_acquire(key, 0, holders, ttl)
                else:
                    await backend.slots_release(key, holders)

            await self.guarded.call(operation, one, None)

    async def in_flight(self, queue: str) -> int | None:
        key = _queue_key(queue)
        return await self.guarded.call(
            "slots_in_use", lambda: self.guarded.backend.slots_in_use(key), None
        )

    async def worker_in_flight(self, worker_id: str) -> int | None:
        key = _worker_key(worker_id)
        return await self.guarded.call(
            "slots_in_use", lambda: self.guarded.backend.slots_in_use(key), None
        )

    async def close(self) -> None:
        await self.guarded.backend.close()


def _with_state(worker: WorkerInfo, state: WorkerState) -> WorkerInfo:
    return dataclasses.replace(worker, state=state)
