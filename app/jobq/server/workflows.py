"""Workflows (ADR 0016): validation, tenancy and wake-ups around the workflow store.

What a workflow must be is decided in `jobq.core.workflows`; what its nodes' completions do
happens in the job store's transactions. This service checks a request, draws the ids
(parents first: id order is then a topological order, which the store's lock order relies
on), and tells waiters and caches what changed.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
from collections.abc import AsyncIterator, Sequence

from jobq.core import bounds
from jobq.core.errors import InvalidArgument, NotFound, ResourceExhausted, StaleLease
from jobq.core.model import LeaseRef, NewJob
from jobq.core.states import TERMINAL_STATES, JobState
from jobq.core.validation import JobSpec, validate_job
from jobq.core.workflows import (
    FailurePolicy,
    NodeSpec,
    Workflow,
    WorkflowRecord,
    check_graph,
)
from jobq.ids import new_id
from jobq.server.caller import caller, named_tenant, scope, worker_scope
from jobq.server.service import JobqService
from jobq.store.changes import stale_reason

WATCH_POLL = 0.5  # seconds between a watcher's reads when nothing woke it


@dataclasses.dataclass(frozen=True, slots=True)
class NodeRequest:
    key: str
    spec: JobSpec
    depends_on: tuple[str, ...]


class WorkflowService:
    def __init__(self, service: JobqService) -> None:
        self._service = service

    async def submit(
        self,
        nodes: Sequence[NodeRequest],
        *,
        name: str = "",
        tenant: str = "",
        on_failure: FailurePolicy = FailurePolicy.CANCEL,
    ) -> WorkflowRecord:
        service = self._service
        principal = caller()
        in_tenant = named_tenant(principal, tenant, "tenant")
        limits = service.limits
        order = check_graph(
            [NodeSpec(n.key, n.depends_on) for n in nodes], limits.max_workflow_nodes
        )
        now = service.clock.now()
        workflow = Workflow(new_id(), in_tenant, name, on_failure, now)
        # Ids drawn in topological order (UUIDv7 ascends): every parent's id is smaller.
        ids = {index: new_id() for index in order}
        id_of = {node.key: ids[i] for i, node in enumerate(nodes)}
        new_jobs: dict[int, NewJob] = {}
        for index, node in enumerate(nodes):
            prefix = f"nodes[{index}].job"
            if node.spec.idempotency_key:
                raise InvalidArgument(
                    f"{prefix}.idempotency_key", "is not taken in a workflow node"
                )
            if node.spec.tenant and node.spec.tenant != in_tenant:
                named_tenant(principal, node.spec.tenant, f"{prefix}.tenant")
                raise InvalidArgument(f"{prefix}.tenant", "must be the workflow's tenant")
            try:
                new = validate_job(
                    dataclasses.replace(node.spec, tenant=in_tenant),
                    now=now,
                    limits=limits,
                    new_id=lambda index=index: ids[index],  # type: ignore[misc]
                )
            except InvalidArgument as exc:
                raise InvalidArgument(f"{prefix}.{exc.field}", exc.problem) from None
            new_jobs[index] = dataclasses.replace(
                new,
                workflow_id=workflow.id,
                workflow_key=node.key,
                parents=len(node.depends_on),
            )
        if not service.settings.auto_create_queues:
            for queue_tenant, queue in sorted({(j.tenant, j.queue) for j in new_jobs.values()}):
                if await service.store.queues.get(queue, tenant=queue_tenant) is None:
                    raise NotFound(f"queue {queue!r} not found (JQ_AUTO_CREATE_QUEUES is off)")
        edges = [(id_of[p], id_of[n.key]) for n in nodes for p in n.depends_on]
        record = await service.store.workflows.submit(
            workflow, [new_jobs[i] for i in order], edges, now
        )
        for job in record.jobs:
            service.metrics.job_transition(job.queue, "submitted")
        queued = collections.Counter(j.queue for j in record.jobs if j.state is JobState.QUEUED)
        if queued:
            service.notifier.work_available(queued)
        return record

    async def get(self, workflow_id: str) -> WorkflowRecord:
        if not workflow_id:
            raise InvalidArgument("id", "must not be empty")
        record = None
        if bounds.is_job_id(workflow_id):
            record = await self._service.store.workflows.get(workflow_id, tenant=scope(caller()))
        if record is None:
            raise NotFound(f"workflow {workflow_id} not found")
        return record

    async def cancel(self, workflow_id: str, reason: str) -> WorkflowRecord:
        await self.get(workflow_id)
        service = self._service
        changed = await service.store.workflows.cancel(
            workflow_id, service.clock.now(), reason, tenant=scope(caller())
        )
        for job in changed:
            if job.state is JobState.CANCELLED:
                service.metrics.job_transition(job.queue, "cancelled")
        await service.jobs_changed(j.id for j in changed)
        return await self.get(workflow_id)

    async def watch(
        self, workflow_id: str, poll: float = WATCH_POLL
    ) -> AsyncIterator[WorkflowRecord]:
        """The workflow now, then each time a node's state changes, until all have finished."""
        record = await self.get(workflow_id)
        last: tuple[JobState, ...] | None = None
        while True:
            states = tuple(j.state for j in record.jobs)
            if states != last:
                last = states
                yield record
            if all(s in TERMINAL_STATES for s in states):
                return
            await asyncio.sleep(poll)
            record = await self.get(workflow_id)

    async def parent_results(self, worker_id: str, lease: LeaseRef) -> list[tuple[str, str]]:
        """(key, result) of each succeeded parent of a job `worker_id` holds, within
        JQ_MAX_PARENT_RESULTS_BYTES in all."""
        service = self._service
        worker = await service.own_worker(worker_id)
        job = None
        if bounds.is_job_id(lease.job_id):
            job = await service.store.jobs.get(lease.job_id, tenant=worker_scope(worker))
        why = stale_reason(job, worker_id, lease)
        if why is not None:
            raise StaleLease({lease.job_id: why})
        results = await service.store.workflows.parent_results(lease.job_id)
        limit = service.settings.max_parent_results_bytes
        size = sum(len(key) + len((result or "").encode()) for key, result in results)
        if size > limit:
            raise ResourceExhausted(
                f"the parents' results are {size} bytes, over JQ_MAX_PARENT_RESULTS_BYTES ({limit})"
            )
        return [(key, result or "null") for key, result in results]
