"""Workflows (ADR 0016), written once over the dialect port like the job repository.

Two halves. `SqlWorkflows` is the repository: submit a DAG in one transaction, read it,
cancel it. `follow_up` is what the job repository calls inside the transaction that ended
some workflow jobs (an outcome, a reaped lease, a cancel, an expiry, a discard): a success
readies the children whose every parent has now succeeded, set-based, in that same
transaction; a node that can no longer succeed cancels its waiting descendants (a dead one
only under the `cancel` policy: under `wait` they wait for its replay).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from jobq.core.errors import NotFound
from jobq.core.model import Ended, Job, JobEvent, NewJob, QueueConfig
from jobq.core.states import JobState
from jobq.core.workflows import FailurePolicy, Workflow, WorkflowRecord
from jobq.store.base import Tenant
from jobq.store.changes import READY, READY_LATER, UNREACHABLE, cancel_change, submitted
from jobq.store.sql.port import Dialect

S = JobState
UNREACHABLE_ERROR = "cancelled: an ancestor in its workflow will not succeed"
# The queue defaults a submit writes for a queue it creates (ENSURE_QUEUES): jobs and workflows.
QUEUE_DEFAULT_COLUMNS = (
    "paused",
    "weight",
    "max_attempts",
    "backoff_base",
    "backoff_max",
    "lease_timeout",
    "default_ttl",
    "concurrency_limit",
    "retention",
)


# The job repository's row encoders, imported when first used: jobs.py imports follow_up
# from here at load time, so importing it back at load time would be a cycle.
def _event_row(event: JobEvent) -> dict[str, Any]:
    from jobq.store.sql.jobs import event_row

    return event_row(event)


def _node_row(job: Job, parents: int) -> dict[str, Any]:
    from jobq.store.sql.jobs import job_row

    return job_row(job) | {
        "workflow_id": job.workflow_id,
        "workflow_key": job.workflow_key,
        "waiting_on": parents,
    }


def _wake(jobs: Iterable[Job]) -> list[dict[str, str]]:
    return [{"queue": q} for q in sorted({j.queue for j in jobs if j.state is S.QUEUED})]


class SqlWorkflows:
    def __init__(self, dialect: Dialect, queue_defaults: QueueConfig) -> None:
        self._d = dialect
        self._q = dialect.q
        self._defaults = queue_defaults

    async def submit(
        self,
        workflow: Workflow,
        jobs: Sequence[NewJob],
        edges: Sequence[tuple[str, str]],
        now: dt.datetime,
    ) -> WorkflowRecord:
        """Store the workflow, its jobs (waiting unless a root) and its edges, all or none."""
        keys = sorted({(j.tenant, j.queue) for j in jobs})
        defaults = {c: getattr(self._defaults, c) for c in QUEUE_DEFAULT_COLUMNS}
        async with self._d.tx() as conn:
            rows = await self._d.fetch(
                conn,
                self._q.ENSURE_QUEUES,
                defaults
                | {"tenants": [t for t, _ in keys], "names": [n for _, n in keys], "now": now},
            )
            queues = {(q.tenant, q.name): q for q in map(self._d.queue, rows)}
            if len(queues) < len(keys):  # created by another transaction meanwhile
                rows = await self._d.fetch(
                    conn,
                    self._q.QUEUES_BY_KEY,
                    {"tenants": [t for t, _ in keys], "names": [n for _, n in keys]},
                )
                queues = {(q.tenant, q.name): q for q in map(self._d.queue, rows)}
            await self._d.execute(
                conn,
                self._q.INSERT_WORKFLOW,
                {
                    "id": workflow.id,
                    "tenant": workflow.tenant,
                    "name": workflow.name,
                    "on_failure": workflow.on_failure.value,
                    "created_at": workflow.created_at,
                },
            )
            stored = [submitted(new, queues[(new.tenant, new.queue)], now) for new in jobs]
            await self._d.write(
                conn,
                self._q.SUBMIT_NODES,
                {"now": now},
                jobs=[
                    _node_row(job, new.parents) for (job, _), new in zip(stored, jobs, strict=True)
                ],
                edges=[
                    {"tenant": workflow.tenant, "workflow_id": workflow.id, "parent": p, "child": c}
                    for p, c in edges
                ],
                events=[_event_row(event) for _, event in stored],
                wake=_wake(job for job, _ in stored),
            )
        return WorkflowRecord(workflow, [job for job, _ in stored], list(edges))

    async def get(self, workflow_id: str, *, tenant: Tenant = None) -> WorkflowRecord | None:
        if not self._d.valid_id(workflow_id):
            return None
        async with self._d.read() as conn:
            rows = await self._d.fetch(
                conn, self._q.WORKFLOW_BY_ID, {"id": workflow_id, "tenant": tenant}
            )
            if not rows:
                return None
            jobs = await self._d.fetch(conn, self._q.WORKFLOW_JOBS, {"id": workflow_id})
            edges = await self._d.fetch(conn, self._q.WORKFLOW_EDGES, {"id": workflow_id})
        return WorkflowRecord(
            self._workflow(rows[0]),
            [self._d.job(r) for r in jobs],
            [(str(r["parent_id"]), str(r["child_id"])) for r in edges],
        )

    async def cancel(
        self, workflow_id: str, now: dt.datetime, reason: str, *, tenant: Tenant = None
    ) -> list[Job]:
        """Cancel every unfinished node: pending and waiting ones now, running ones asked
        to stop. The jobs it changed, as they now are; NotFound outside `tenant`."""
        async with self._d.tx() as conn:
            found = self._d.valid_id(workflow_id) and await self._d.fetch(
                conn, self._q.WORKFLOW_BY_ID, {"id": workflow_id, "tenant": tenant}
            )
            if not found:
                raise NotFound(f"workflow {workflow_id} not found")
            rows = await self._d.fetch(
                conn, self._q.UNFINISHED_WORKFLOW_JOBS_LOCKED, {"id": workflow_id}
            )
            changes = [
                (job, change)
                for job in map(self._d.job, rows)
                if (change := cancel_change(job, now, reason or "workflow cancelled")) is not None
            ]
            ended = [j.id for j, c in changes if c.fields.get("state") == S.CANCELLED.value]
            asked = [j.id for j, c in changes if "state" not in c.fields]
            if ended:
                await self._d.execute(
                    conn, self._q.CANCEL_JOBS, {"ids": ended, "now": now, "error": None}
                )
            if asked:
                await self._d.execute(conn, self._q.REQUEST_CANCEL, {"ids": asked, "now": now})
            if changes:
                await self._d.write(
                    conn,
                    self._q.EVENTS,
                    {},
                    events=[_event_row(c.event) for _, c in changes],
                    wake=[],
                )
        after = []
        for job, _ in changes:
            if job.id in ended:
                after.append(
                    dataclasses.replace(job, state=S.CANCELLED, finished_at=now, updated_at=now)
                )
            else:
                after.append(dataclasses.replace(job, cancel_requested=True, updated_at=now))
        return after

    async def parent_results(self, job_id: str) -> list[tuple[str, str | None]]:
        """(key, result) of each succeeded parent of a workflow node."""
        if not self._d.valid_id(job_id):
            return []
        async with self._d.read() as conn:
            rows = await self._d.fetch(conn, self._q.PARENT_RESULTS, {"id": job_id})
        return [(r["key"], r["result"]) for r in rows]

    def _workflow(self, row: Any) -> Workflow:
        created = row["created_at"]
        return Workflow(
            id=str(row["id"]),
            tenant=row["tenant"],
            name=row["name"],
            on_failure=FailurePolicy(row["on_failure"]),
            created_at=created
            if isinstance(created, dt.datetime)
            else self._d.decode_time(created),
        )


async def follow_up(
    d: Dialect, conn: Any, ended: Sequence[Job | Ended], now: dt.datetime
) -> list[Job]:
    """What the end of workflow jobs does to their descendants, in the caller's transaction:
    the jobs it changed, as they now are. Nothing (and no statement) for other jobs."""
    nodes = [j for j in ended if j.workflow_id is not None]
    if not nodes:
        return []
    q = d.q
    changed: list[Job] = []
    events: list[JobEvent] = []
    succeeded = [j.id for j in nodes if j.state is S.SUCCEEDED]
    if succeeded:
        for job in map(
            d.job, await d.fetch(conn, q.READY_CHILDREN, {"ids": succeeded, "now": now})
        ):
            if job.state is S.WAITING:
                continue  # it still waits for another parent
            move = READY if job.state is S.QUEUED else READY_LATER
            events.append(move.event(job, now, was=S.WAITING))
            changed.append(job)
    lost = [j.id for j in nodes if j.state in (S.CANCELLED, S.EXPIRED)]
    dead = [j for j in nodes if j.state is S.DEAD]
    if dead:
        rows = await d.fetch(
            conn, q.WORKFLOWS_BY_ID, {"ids": sorted({j.workflow_id for j in dead})}
        )
        policy = {str(r["id"]): FailurePolicy(r["on_failure"]) for r in rows}
        lost += [j.id for j in dead if policy.get(j.workflow_id or "") is FailurePolicy.CANCEL]
    if lost:
        rows = await d.fetch(
            conn, q.CANCEL_DESCENDANTS, {"ids": lost, "now": now, "error": UNREACHABLE_ERROR}
        )
        for job in map(d.job, rows):
            events.append(UNREACHABLE.event(job, now, was=S.WAITING, reason=UNREACHABLE_ERROR))
            changed.append(job)
    if events:
        await d.write(
            conn, q.EVENTS, {}, events=[_event_row(e) for e in events], wake=_wake(changed)
        )
    return changed
