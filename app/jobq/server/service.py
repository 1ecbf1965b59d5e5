"""What the gRPC servicers call: validation, the store, wake-ups and time in one place."""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import random
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any, Literal, overload

from jobq.auth.principal import ALL_TENANTS
from jobq.config import ServerSettings
from jobq.core import bounds
from jobq.core.clock import Clock
from jobq.core.errors import FailedPrecondition, InvalidArgument, NotFound
from jobq.core.model import (
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
from jobq.core.states import TERMINAL_STATES, JobState
from jobq.core.validation import (
    TASK_TYPE,
    JobSpec,
    Limits,
    validate_job,
    validate_outcome,
    validate_queue,
    validate_queue_name,
)
from jobq.ids import new_id
from jobq.observability.metrics import ServerMetrics
from jobq.server.caller import (
    caller,
    filter_scope,
    may_act_as,
    named_tenant,
    scope,
    serves_all,
    worker_scope,
)
from jobq.server.coordination import Coordination
from jobq.server.dispatch import Dispatcher
from jobq.server.group_submit import GroupSubmit
from jobq.server.live_workers import LiveWorkers
from jobq.server.notify import Notifier
from jobq.store.base import DeadLetterSelector, Page, Store, Tenant

MAX_PAGE = 1000
MIN_HEARTBEAT_INTERVAL = dt.timedelta(milliseconds=200)


def queue_defaults(settings: ServerSettings) -> QueueConfig:
    return QueueConfig(
        name="default",
        max_attempts=settings.default_max_attempts,
        lease_timeout=settings.default_lease_timeout,
        backoff_base=settings.default_backoff_base,
        backoff_max=settings.default_backoff_max,
        retention=settings.default_retention,
    )


def limits_from(settings: ServerSettings) -> Limits:
    return Limits(
        max_payload_bytes=settings.max_payload_bytes,
        max_batch=settings.max_batch,
        max_json_depth=settings.max_json_depth,
        max_error_bytes=settings.max_error_bytes,
        max_workflow_nodes=settings.max_workflow_nodes,
    )


def _prefixed(exc: InvalidArgument, prefix: str) -> InvalidArgument:
    return InvalidArgument(f"{prefix}.{exc.field}", exc.problem)


def _task_queues(
    pairs: Sequence[tuple[str, str]], queues: Sequence[str], task_types: Sequence[str]
) -> tuple[tuple[str, str], ...]:
    """A registration's (type, queue) pairs, checked: a route to a queue the worker does not
    lease from, or for a type it does not run, would send submits where nobody serves them."""
    served, types = set(queues), set(task_types)
    seen: dict[str, str] = {}
    for index, (type_, queue) in enumerate(pairs):
        where = f"task_queues[{index}]"
        if not TASK_TYPE.fullmatch(type_):
            raise InvalidArgument(f"{where}.type", f"{type_[:64]!r} is not a task type")
        if types and type_ not in types:
            raise InvalidArgument(f"{where}.type", f"{type_!r} is not among task_types")
        if queue not in served:
            raise InvalidArgument(f"{where}.queue", f"{queue[:64]!r} is not among queues")
        if seen.setdefault(type_, queue) != queue:
            raise InvalidArgument(f"{where}.type", f"{type_!r} is given two queues")
    return tuple(sorted(seen.items()))


def in_process_coordination(settings: ServerSettings, metrics: ServerMetrics) -> Coordination:
    from jobq.coord.guard import GuardedCoordinator
    from jobq.coord.memory import MemoryCoordinator

    guarded = GuardedCoordinator(MemoryCoordinator(), metrics, shared=False)
    return Coordination(guarded, metrics, settings.status_cache_ttl)


class JobqService:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        settings: ServerSettings,
        metrics: ServerMetrics,
        notifier: Notifier | None = None,
        rng: random.Random | None = None,
        coordination: Coordination | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings
        self.metrics = metrics
        self.notifier = notifier or Notifier()
        self._rng = rng or random.Random()
        self._limits = limits_from(settings)
        self._defaults = queue_defaults(settings)
        self.coordination = coordination or in_process_coordination(settings, metrics)
        self.dispatcher = Dispatcher(
            self.coordination.guarded,
            metrics,
            tenant_weights=settings.tenant_weight_map(),
            tenant_caps=settings.tenant_cap_map(),
        )
        # Concurrent single submits share a transaction (group_submit): at most a batch's
        # worth, so one write stays within what SubmitBatch may send.
        self._group_submit = GroupSubmit(self._write_submits, max_batch=self._limits.max_batch)
        # The live workers as last read, for Submit's routing and warnings (_live_workers).
        self._live = LiveWorkers(self._read_live_workers, clock)

    @property
    def limits(self) -> Limits:
        return self._limits

    async def own_worker(self, worker_id: str) -> WorkerInfo:
        """The caller's registered worker of this id, or FailedPrecondition (see _own_worker)."""
        self._need_worker_id(worker_id)
        return await self._own_worker(worker_id)

    async def jobs_changed(self, job_ids: Iterable[str]) -> None:
        await self._jobs_changed(job_ids)

    # --- jobs -------------------------------------------------------------------------

    async def submit(self, specs: Sequence[JobSpec], field: str = "jobs") -> list[SubmitResult]:
        if not specs:
            raise InvalidArgument(field, "must hold at least one job")
        if len(specs) > self._limits.max_batch:
            raise InvalidArgument(
                field, f"{len(specs)} jobs is over the batch limit of {self._limits.max_batch}"
            )
        principal = caller()
        now = self.clock.now()
        new_jobs = []
        routes = await self._task_queues() if any(not s.queue for s in specs) else {}
        for index, spec in enumerate(specs):
            prefix = field if len(specs) == 1 and field == "job" else f"{field}[{index}]"
            tenant = named_tenant(principal, spec.tenant, f"{prefix}.tenant")
            # The tenant's own workers first, then those serving every tenant.
            queue = (
                spec.queue
                or routes.get((tenant, spec.type))
                or routes.get((ALL_TENANTS, spec.type), "")
            )
            try:
                new_jobs.append(
                    validate_job(
                        spec,
                        now=now,
                        limits=self._limits,
                        new_id=new_id,
                        tenant=tenant,
                        queue=queue,
                    )
                )
            except InvalidArgument as exc:
                raise _prefixed(exc, prefix) from None
        if not self.settings.auto_create_queues:
            for tenant, name in sorted({(j.tenant, j.queue) for j in new_jobs}):
                if await self.store.queues.get(name, tenant=tenant) is None:
                    raise NotFound(f"queue {name!r} not found (JQ_AUTO_CREATE_QUEUES is off)")
        if len(new_jobs) == 1 and not new_jobs[0].idempotency_key:
            return [await self._group_submit.submit(new_jobs[0], now)]
        return await self._write_submits(new_jobs, now)

    async def _write_submits(self, jobs: Sequence[NewJob], now: dt.datetime) -> list[SubmitResult]:
        """The store's submit, then the wake-up of a waiting lease per queued job.

        The group write calls this too: its callers' answers wait until it returns, so the
        lease is woken first and starts its transaction while they are answered (one pass
        of the event loop sooner at light load), and a batch wakes once, with its count."""
        results = await self.store.jobs.submit(jobs, now)
        created = [r.job for r in results if r.created]
        # Counted per queue, not per job: a batch's jobs mostly share one.
        for queue_name, count in collections.Counter(j.queue for j in created).items():
            self.metrics.job_transition(queue_name, "submitted", count)
        queued = collections.Counter(j.queue for j in created if j.state is JobState.QUEUED)
        if queued:
            self.notifier.work_available(queued)
        return results

    async def _live_workers(self) -> list[WorkerInfo]:
        """Every active worker that heartbeats, of every tenant: callers keep those serving
        their jobs' tenant (its own workers, and ALL_TENANTS ones).

        Read at most once a second, one read for all callers (live_workers): a unary Submit
        would otherwise pay a second transaction reading every worker just to route and
        warn (ADR 0018, 0026). A worker registering, leaving or draining through this server
        is seen at once; through another replica, within a second."""
        return await self._live.get()

    async def _read_live_workers(self, now: dt.datetime) -> list[WorkerInfo]:
        workers = await self.store.workers.all(now, self._defaults.lease_timeout)
        return [w for w in workers if w.state is WorkerState.ACTIVE]

    async def _task_queues(self) -> dict[tuple[str, str], str]:
        """(tenant, task type) -> the queue live workers registered the type on, for a submit
        that names no queue. Where workers disagree, the queue most of them serve it on (then
        the first by name), so every replica routes alike."""
        votes: collections.Counter[tuple[str, str, str]] = collections.Counter()
        for w in await self._live_workers():
            for type_, queue in w.task_queues:
                votes[(w.tenant, type_, queue)] += 1
        routes: dict[tuple[str, str], str] = {}
        for (tenant, type_, queue), _ in sorted(votes.items(), key=lambda kv: (-kv[1], kv[0])):
            routes.setdefault((tenant, type_), queue)
        return routes

    async def unserved(self, jobs: Sequence[Job]) -> list[str]:
        """A sentence for each (queue, type) of `jobs` that no live worker serves: a mistyped
        task name or a queue nobody leases from would otherwise wait silently."""
        live = await self._live_workers()
        warnings = []
        for tenant, queue, type_ in sorted({(j.tenant, j.queue, j.type) for j in jobs}):
            if not any(
                w.tenant in (tenant, ALL_TENANTS)
                and queue in w.queues
                and (not w.task_types or type_ in w.task_types)
                for w in live
            ):
                warnings.append(
                    f"no live worker serves task {type_!r} on queue {queue!r}: "
                    "the job waits until one does (check the name, the queue and jq-worker)"
                )
        return warnings

    async def get(self, job_id: str) -> Job:
        return await self._get(job_id, scope(caller()), cached=True)

    async def _get(self, job_id: str, tenant: Tenant, *, cached: bool = False) -> Job:
        """`cached`: through the status cache (GetJob, WatchJob), else from the store."""
        if not job_id:
            raise InvalidArgument("id", "must not be empty")
        # Not an id the server wrote: no job has it, on either store.
        job = None
        if bounds.is_job_id(job_id):

            async def load() -> Job | None:
                return await self.store.jobs.get(job_id, tenant=tenant)

            job = await (self.coordination.job(job_id, tenant, load) if cached else load())
        if job is None:
            raise NotFound(f"job {job_id} not found")
        return job

    async def _jobs_changed(self, job_ids: Iterable[str]) -> None:
        """Wake this replica's waiters, drop the cached status, tell the other replicas;
        before the call that changed the jobs returns, so its caller reads its own write."""
        ids = list(job_ids)
        self.notifier.jobs_changed(ids)
        await self.coordination.jobs_changed(ids)

    async def job_events(self, job_id: str) -> list[JobEvent]:
        """A job's history, oldest first: NotFound as for get() outside the caller's scope."""
        job = await self._get(job_id, scope(caller()))
        return await self.store.jobs.events(job.id)

    async def list_jobs(self, flt: JobFilter, page_size: int, page_token: str) -> Page:
        if page_size < 0 or page_size > MAX_PAGE:
            raise InvalidArgument("page_size", f"must be in 0..{MAX_PAGE} (0: 50)")
        bounds.page_token(page_token)
        tenant = filter_scope(caller(), flt.tenant or "", "tenant")
        return await self.store.jobs.page(flt, page_size or 50, page_token or None, tenant=tenant)

    async def cancel(self, job_id: str, reason: str) -> Job:
        tenant = scope(caller())
        await self._get(job_id, tenant)
        job = await self.store.jobs.cancel(job_id, self.clock.now(), reason, tenant=tenant)
        if job.state is JobState.CANCELLED:
            self.metrics.job_transition(job.queue, "cancelled")
        await self._jobs_changed([job_id])
        return job

    async def watch(self, job_id: str, poll: float = 1.0) -> AsyncIterator[Job]:
        """The job now, then each time it changes, ending after a terminal state."""
        # The caller's scope once, for the whole stream.
        tenant = scope(caller())
        job = await self._get(job_id, tenant, cached=True)
        last: tuple[Any, ...] | None = None
        while True:
            view = (
                job.state,
                job.attempt,
                job.progress,
                job.progress_message,
                job.cancel_requested,
            )
            if view != last:
                last = view
                yield job
            if job.state in TERMINAL_STATES:
                return
            await self.notifier.wait_for_job(job_id, poll)
            job = await self._get(job_id, tenant, cached=True)

    # --- workers ----------------------------------------------------------------------

    async def register_worker(
        self,
        worker_id: str,
        hostname: str,
        queues: Sequence[str],
        capacity: int,
        task_types: Sequence[str],
        task_queues: Sequence[tuple[str, str]] = (),
    ) -> tuple[WorkerInfo, dt.timedelta]:
        if capacity < 1:
            raise InvalidArgument("capacity", "must be at least 1")
        if not queues:
            raise InvalidArgument("queues", "name at least one queue")
        for name in queues:
            validate_queue_name(name, "queues")
        routes = _task_queues(task_queues, queues, task_types)
        principal = caller()
        serves_all(principal, queues, "queues")
        now = self.clock.now()
        worker = await self.store.workers.register(
            WorkerInfo(
                id=worker_id or new_id(),
                hostname=hostname or "unknown",
                queues=tuple(queues),
                capacity=capacity,
                state=WorkerState.ACTIVE,
                started_at=now,
                last_heartbeat=now,
                task_types=tuple(task_types),
                tenant=principal.tenant,
                subject=principal.subject,
                task_queues=routes,
            )
        )
        self._live.forget()
        await self.coordination.present(worker.id, self._defaults.lease_timeout)
        return worker, await self._heartbeat_interval(queues, scope(principal))

    async def _heartbeat_interval(self, queues: Sequence[str], tenant: Tenant) -> dt.timedelta:
        timeouts = [self._defaults.lease_timeout]
        wanted = set(queues)
        for queue in await self.store.queues.all(tenant=tenant):
            if queue.name in wanted:
                timeouts.append(queue.lease_timeout)
        return max(MIN_HEARTBEAT_INTERVAL, min(timeouts) / 3)

    async def _own_worker(self, worker_id: str) -> WorkerInfo:
        """The caller's worker of this id. Another principal's reads as never registered:
        the answer the worker already acts on by registering again, and one that says
        nothing about whose the id is."""
        self._need_worker_id(worker_id)
        principal = caller()
        worker = await self.store.workers.get(worker_id, tenant=scope(principal), count_jobs=False)
        if worker is None or not may_act_as(principal, worker):
            raise FailedPrecondition(f"worker {worker_id} is not registered")
        return worker

    async def heartbeat(self, worker_id: str, leases: Sequence[LeaseRef]) -> HeartbeatResult:
        worker = await self._own_worker(worker_id)
        now = self.clock.now()
        result = await self.store.jobs.heartbeat(
            worker_id, leases, now, tenant=worker_scope(worker)
        )
        await self.coordination.present(worker_id, self._defaults.lease_timeout)
        stale = {s.lease.job_id for s in result.stale}
        await self.coordination.renewed(
            worker, [lease for lease in leases if lease.job_id not in stale],
            result.lease_expires_at, now,
        )  # fmt: skip
        return result

    @overload
    async def lease(
        self, worker_id: str, queues: Sequence[str], max_jobs: int, wait: dt.timedelta,
        task_types: Sequence[str], *, lean: Literal[False] = False,
    ) -> Sequence[Job]: ...  # fmt: skip

    @overload
    async def lease(
        self, worker_id: str, queues: Sequence[str], max_jobs: int, wait: dt.timedelta,
        task_types: Sequence[str], *, lean: Literal[True],
    ) -> Sequence[LeasedJob]: ...  # fmt: skip

    async def lease(
        self,
        worker_id: str,
        queues: Sequence[str],
        max_jobs: int,
        wait: dt.timedelta,
        task_types: Sequence[str],
        *,
        lean: bool = False,
    ) -> Sequence[Job] | Sequence[LeasedJob]:
        """`lean`: LeasedJobs (what jq-worker asks for), else whole jobs."""
        self._need_worker_id(worker_id)
        if not 1 <= max_jobs <= self._limits.max_batch:
            raise InvalidArgument("max_jobs", f"must be in 1..{self._limits.max_batch}")
        if wait > self.settings.max_lease_wait:
            raise InvalidArgument("wait", f"must be at most {self.settings.max_lease_wait}")
        worker = await self._own_worker(worker_id)
        if worker.state is not WorkerState.ACTIVE:
            return []
        queues = list(queues or worker.queues)
        serves_all(caller(), queues, "queues")
        tenant = worker_scope(worker)
        deadline = self.clock.now() + wait
        while True:
            now = self.clock.now()
            jobs: Sequence[Job] | Sequence[LeasedJob]
            if lean:
                jobs = await self.store.jobs.lease(
                    worker_id, queues, max_jobs, now, task_types, tenant=tenant,
                    limits=self.dispatcher, lean=True,
                )  # fmt: skip
            else:
                jobs = await self.store.jobs.lease(
                    worker_id, queues, max_jobs, now, task_types, tenant=tenant,
                    limits=self.dispatcher,
                )  # fmt: skip
            if jobs:
                self.metrics.jobs_started(jobs, now)
                await self._jobs_changed(j.id for j in jobs)
                await self.coordination.leased(worker_id, jobs, now)
                return jobs
            remaining = (deadline - now).total_seconds()
            if remaining <= 0:
                return []
            await self.notifier.wait_for_work(
                self.dispatcher.recheck_after(min(remaining, 1.0)), queues
            )

    async def report_progress(
        self, worker_id: str, lease: LeaseRef, progress: float, message: str
    ) -> Job:
        worker = await self._own_worker(worker_id)
        if not 0.0 <= progress <= 1.0:
            raise InvalidArgument("progress", "must be in 0..1")
        if len(message) > 1000:
            raise InvalidArgument("message", "must be at most 1000 characters")
        job = await self.store.jobs.report_progress(
            worker_id, lease, progress, message, self.clock.now(), tenant=worker_scope(worker)
        )
        await self._jobs_changed([job.id])
        return job

    @overload
    async def report(
        self, worker_id: str, outcomes: Sequence[Outcome], *, lean: Literal[False] = False
    ) -> Sequence[Job]: ...

    @overload
    async def report(
        self, worker_id: str, outcomes: Sequence[Outcome], *, lean: Literal[True]
    ) -> Sequence[Ended]: ...

    async def report(
        self, worker_id: str, outcomes: Sequence[Outcome], *, lean: bool = False
    ) -> Sequence[Job] | Sequence[Ended]:
        """`lean`: what the worker's ReportOutcomes answer carries (ids and states)."""
        self._need_worker_id(worker_id)
        if not outcomes:
            return []
        worker = await self._own_worker(worker_id)
        if len(outcomes) > self._limits.max_batch:
            raise InvalidArgument("outcomes", f"at most {self._limits.max_batch} per call")
        outcomes = [
            validate_outcome(outcome, f"outcomes[{index}]", self._limits)
            for index, outcome in enumerate(outcomes)
        ]
        jobs: Sequence[Job] | Sequence[Ended]
        if lean:
            jobs = await self.store.jobs.report(
                worker_id, outcomes, self.clock.now(), tenant=worker_scope(worker), lean=True
            )
        else:
            jobs = await self.store.jobs.report(
                worker_id, outcomes, self.clock.now(), tenant=worker_scope(worker)
            )
        self.metrics.jobs_finished(jobs)
        if any(j.workflow_id and j.state is JobState.SUCCEEDED for j in jobs):
            # Their children readied in the same transaction (ADR 0016): uncounted, since
            # which queues got work is the store's to know.
            self.notifier.work_available()
        await self._jobs_changed(j.id for j in jobs)
        # A finished job with a concurrency key frees a cap slot: a lease waiting for that
        # queue here may start the key's next job now (other replicas look within a second).
        keyed: dict[str, int] = {}
        for job in jobs:
            if job.concurrency_key:
                keyed[job.queue] = keyed.get(job.queue, 0) + 1
        if keyed:
            self.notifier.work_available(keyed)
        leases = {o.lease.job_id: o.lease for o in outcomes}
        await self.coordination.finished(
            worker_id, [(leases[j.id], j) for j in jobs if j.id in leases]
        )
        return jobs

    async def release(self, worker_id: str, leases: Sequence[LeaseRef]) -> ReleaseResult:
        worker = await self._own_worker(worker_id)
        result = await self.store.jobs.release(
            worker_id, leases, self.clock.now(), tenant=worker_scope(worker)
        )
        if result.released:
            stale = {s.lease.job_id for s in result.stale}
            await self._jobs_changed(lease.job_id for lease in leases if lease.job_id not in stale)
            # The worker's counter at once; the queue's (its key needs the job's queue,
            # which a release does not read) at the lease's expiry.
            await self.coordination.released(
                worker_id, [lease for lease in leases if lease.job_id not in stale]
            )
            self.notifier.work_available()
        return result

    async def deregister(self, worker_id: str) -> None:
        self._need_worker_id(worker_id)
        principal = caller()
        worker = await self.store.workers.get(worker_id, tenant=scope(principal))
        if not may_act_as(principal, worker):
            raise NotFound(f"worker {worker_id} not found")
        await self.store.workers.set_state(worker_id, WorkerState.STOPPED)
        self._live.forget()
        await self.coordination.gone(worker_id)

    @staticmethod
    def _need_worker_id(worker_id: str) -> None:
        if not worker_id:
            raise InvalidArgument("worker_id", "must not be empty; call RegisterWorker first")

    # --- queues, workers, dead letters (operators) ---------------------------------------

    async def create_queue(self, fields: dict[str, Any]) -> QueueConfig:
        fields = fields | {
            "tenant": named_tenant(caller(), fields.get("tenant", ""), "queue.tenant")
        }
        base = dataclasses.replace(self._defaults, name=fields.get("name", ""))
        non_zero: dict[str, Any] = {k: v for k, v in fields.items() if v or isinstance(v, bool)}
        queue = validate_queue(dataclasses.replace(base, **non_zero))
        return await self.store.queues.create(queue, self.clock.now())

    async def update_queue(
        self, name: str, changes: dict[str, Any], tenant: str = ""
    ) -> QueueConfig:
        """`tenant`: the tenant the request names for the queue ("": the caller's)."""
        if "name" in changes:
            raise InvalidArgument("update_mask", "a queue's name cannot change")
        if "tenant" in changes:
            raise InvalidArgument("update_mask", "a queue's tenant cannot change")
        in_tenant = named_tenant(caller(), tenant, "queue.tenant")
        queue = await self.store.queues.update(name, changes, self.clock.now(), tenant=in_tenant)
        self.notifier.work_available()
        return queue

    async def get_queue(self, name: str, tenant: str = "") -> QueueConfig:
        in_tenant = named_tenant(caller(), tenant, "tenant")
        queue = await self.store.queues.get(name, tenant=in_tenant)
        if queue is None:
            raise NotFound(f"queue {name!r} not found")
        return queue

    async def list_queues(self) -> list[QueueConfig]:
        return await self.store.queues.all(tenant=scope(caller()))

    async def purge_queue(self, name: str, tenant: str = "") -> int:
        in_tenant = named_tenant(caller(), tenant, "tenant")
        return await self.store.queues.purge(name, self.clock.now(), tenant=in_tenant)

    async def queue_stats(
        self, name: str | None, tenant: str = "", *, finished: bool = True
    ) -> list[QueueStats]:
        """`finished=False`: unfinished states only, a read the backlog bounds (the console's
        queues page); with them, every job of the queues is counted (GetQueueStats)."""
        in_scope = filter_scope(caller(), tenant, "tenant")
        return await self.store.queues.stats(
            name, self.clock.now(), tenant=in_scope, finished=finished
        )

    async def list_workers(self) -> list[WorkerInfo]:
        workers = await self.store.workers.all(
            self.clock.now(), self._defaults.lease_timeout, tenant=scope(caller())
        )
        return await self.coordination.with_presence(workers)

    async def drain_worker(self, worker_id: str) -> WorkerInfo:
        self._need_worker_id(worker_id)
        drained = await self.store.workers.set_state(
            worker_id, WorkerState.DRAINING, tenant=scope(caller())
        )
        self._live.forget()
        return drained

    async def list_dead(self, queue: str, page_size: int, page_token: str) -> Page:
        flt = JobFilter(queue=queue or None, states=(JobState.DEAD,))
        return await self.list_jobs(flt, page_size, page_token)

    async def replay_dead(self, selector: DeadLetterSelector) -> int:
        self._need_selector(selector)
        tenant = scope(caller())
        count = await self.store.jobs.replay_dead(selector, self.clock.now(), tenant=tenant)
        if count:
            # Named jobs' cached status goes now; a whole queue's ages out (the cache TTL).
            await self._jobs_changed(selector.ids)
            self.notifier.work_available()
        return count

    async def discard_dead(self, selector: DeadLetterSelector) -> int:
        self._need_selector(selector)
        tenant = scope(caller())
        count = await self.store.jobs.discard_dead(selector, self.clock.now(), tenant=tenant)
        if count:
            await self._jobs_changed(selector.ids)
        return count

    @staticmethod
    def _need_selector(selector: DeadLetterSelector) -> None:
        if not selector.ids and not selector.queue:
            raise InvalidArgument("selector", "name a queue or job ids")
        for index, job_id in enumerate(selector.ids):
            if not bounds.is_job_id(job_id):
                raise InvalidArgument(f"selector.ids[{index}]", f"{job_id[:64]!r} is not a job id")

    async def cluster_stats(self) -> dict[str, Any]:
        stats = await self.queue_stats(None)
        by_state: dict[str, int] = {s.value: 0 for s in JobState}
        for queue in stats:
            for state, count in queue.by_state.items():
                by_state[state] = by_state.get(state, 0) + count
        workers = await self.list_workers()
        # The outbox is shared plumbing: only a caller who sees every tenant sees its size.
        everyone = scope(caller()) is None
        backlog = (await self.store.events.backlog())[0] if everyone else 0
        return {
            "jobs_by_state": by_state,
            "queues": len(stats),
            "active_workers": sum(w.state is WorkerState.ACTIVE for w in workers),
            "outbox_backlog": backlog,
        }

    # --- singleton work, run by the scheduler loop -----------------------------------------

    async def tick(self, leader_since: dt.datetime | None = None) -> None:
        """One round of singleton work; `leader_since`: when this process became leader."""
        now = self.clock.now()
        batch = self.settings.scheduler_batch
        expired = await self.store.jobs.expire_unstarted(now, batch)
        promoted = await self.store.jobs.promote_due(now, batch)
        reaped = await self.store.jobs.reap_expired_leases(now, batch, leader_since)
        for job in reaped:
            self.metrics.lease_expired(job)
        if reaped:
            await self._jobs_changed(j.id for j in reaped)
        if promoted:
            self.notifier.work_available()
        for queue in expired:
            self.metrics.expired(queue)

    async def observe(self) -> None:
        """Refresh the store-wide gauges (queue depth, workers, outbox). The scheduler calls
        this on the leader only: every replica reads the same store (cluster_gauges.py)."""
        # Cluster-wide, whoever asks: no caller's scope applies to the gauges.
        now = self.clock.now()
        # The gauges show unfinished states only: never a count over the finished history.
        stats = await self.store.queues.stats(None, now, finished=False)
        workers = await self.store.workers.all(now, self._defaults.lease_timeout)
        active = sum(w.state is WorkerState.ACTIVE for w in workers)
        self.metrics.observe_cluster(stats, active, await self.store.events.backlog(), now)
        await self._observe_in_flight(workers)

    async def _observe_in_flight(self, workers: Sequence[WorkerInfo]) -> None:
        """jq_inflight_jobs{queue} and jq_worker_inflight_jobs{worker} from the counters;
        left as they were while coordination does not answer."""
        per_queue: dict[str, int] = {}
        for name in sorted({queue.name for queue in await self.store.queues.all()}):
            count = await self.coordination.in_flight(name)
            if count is None:
                return
            per_queue[name] = count
        for name, count in per_queue.items():
            self.metrics.inflight_queue.labels(name).set(count)
        held = {}
        for worker in workers:
            if worker.state is not WorkerState.STOPPED:
                count = await self.coordination.worker_in_flight(worker.id)
                if count is None:
                    return
                held[worker.id] = count
        # Stopped workers' series go: worker ids come and go with every deploy.
        self.metrics.inflight_worker.clear()
        for worker_id, count in held.items():
            self.metrics.inflight_worker.labels(worker_id).set(count)
