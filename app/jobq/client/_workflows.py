"""Workflows in the SDK (ADR 0016): nodes, the workflow as the server shows it, and the
canvas helpers chain, group and chord built on the one DAG call.

    wf = await client.submit_workflow([
        Node("fetch", "http.get", {"url": u}),
        Node("parse", "html.parse", depends_on=["fetch"]),
    ])
    await client.submit_workflow(group(sig("a"), sig("b")) | sig("sum"))   # a chord
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from jobq.client import _convert as cv
from jobq.client._convert import DurationLike, Job
from jobq.core.states import TERMINAL_STATES
from jobq.v1 import workflow_service_pb2 as pb

POLICY_TO_PB = {"cancel": pb.FAILURE_POLICY_CANCEL, "wait": pb.FAILURE_POLICY_WAIT}
POLICY_FROM_PB = {v: k for k, v in POLICY_TO_PB.items()}
STATE_FROM_PB = {
    pb.WORKFLOW_STATE_RUNNING: "running",
    pb.WORKFLOW_STATE_SUCCEEDED: "succeeded",
    pb.WORKFLOW_STATE_FAILED: "failed",
}


@dataclasses.dataclass(frozen=True, slots=True)
class Node:
    """One job of a workflow, named by `key`, run after every node in `depends_on`."""

    key: str
    type: str
    payload: Any = None
    depends_on: Sequence[str] = ()
    queue: str = ""
    priority: int = 0
    max_attempts: int = 0
    delay: DurationLike | None = None
    timeout: DurationLike | None = None
    ttl: DurationLike | None = None

    def to_pb(self) -> pb.WorkflowNode:
        job = cv.job_request(
            self.type,
            self.payload,
            queue=self.queue,
            priority=self.priority,
            max_attempts=self.max_attempts,
            delay=self.delay,
            run_at=None,
            timeout=self.timeout,
            ttl=self.ttl,
            idempotency_key="",
            tenant="",
        )
        return pb.WorkflowNode(key=self.key, job=job, depends_on=list(self.depends_on))


@dataclasses.dataclass(frozen=True, slots=True)
class WorkflowNode:
    key: str
    job: Job
    depends_on: tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Workflow:
    id: str
    name: str
    tenant: str
    on_failure: str  # "cancel" | "wait"
    state: str  # "running" | "succeeded" | "failed"
    created_at: dt.datetime | None
    nodes: list[WorkflowNode]

    def node(self, key: str) -> Job:
        for node in self.nodes:
            if node.key == key:
                return node.job
        raise KeyError(key)

    @property
    def finished(self) -> bool:
        return all(n.job.state in TERMINAL_STATES for n in self.nodes)


def workflow_from_pb(message: pb.Workflow) -> Workflow:
    return Workflow(
        id=message.id,
        name=message.name,
        tenant=message.tenant,
        on_failure=POLICY_FROM_PB.get(message.on_failure, "cancel"),
        state=STATE_FROM_PB.get(message.state, "running"),
        created_at=cv.opt_dt(message, "create_time"),
        nodes=[
            WorkflowNode(n.key, cv.job_from_pb(n.job), tuple(n.depends_on)) for n in message.nodes
        ],
    )


# --- the canvas: chain, group, chord ----------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Signature:
    """A job not yet placed in a workflow: `sig("email.send", {...}, queue="emails")`."""

    type: str
    payload: Any = None
    options: tuple[tuple[str, Any], ...] = ()
    key: str = ""

    def __or__(self, other: Canvas) -> Chain:
        return chain(self, other)


def sig(type: str, payload: Any = None, *, key: str = "", **options: Any) -> Signature:
    """A job for the canvas; `options` as Node's (queue, priority, max_attempts, ...)."""
    return Signature(type, payload, tuple(sorted(options.items())), key)


@dataclasses.dataclass(frozen=True, slots=True)
class Group:
    """Jobs that run side by side; what follows a group waits for all of them."""

    items: tuple[Canvas, ...]

    def __or__(self, other: Canvas) -> Chain:
        return chain(self, other)  # group(...) | callback: a chord


@dataclasses.dataclass(frozen=True, slots=True)
class Chain:
    """Each item after every job of the one before."""

    items: tuple[Canvas, ...]

    def __or__(self, other: Canvas) -> Chain:
        return chain(self, other)


Canvas = Signature | Group | Chain


def chain(*items: Canvas) -> Chain:
    flat: list[Canvas] = []
    for item in items:
        flat.extend(item.items if isinstance(item, Chain) else (item,))
    return Chain(tuple(flat))


def group(*items: Canvas) -> Group:
    return Group(tuple(items))


def chord(header: Iterable[Canvas], callback: Canvas) -> Chain:
    """Run `header` side by side, then `callback` once all of them have succeeded; it
    reads their results as its parents' (JobContext.parent_results)."""
    return chain(group(*header), callback)


def nodes_of(canvas: Canvas) -> list[Node]:
    """The DAG a canvas describes: keys "1", "2", ... unless a signature names its own."""
    counter = itertools.count(1)
    nodes: list[Node] = []

    def place(item: Canvas, after: tuple[str, ...]) -> tuple[str, ...]:
        """Add `item` after the keys `after`; the keys of its last jobs."""
        if isinstance(item, Signature):
            key = item.key or str(next(counter))
            nodes.append(Node(key, item.type, item.payload, after, **dict(item.options)))
            return (key,)
        if isinstance(item, Group):
            return tuple(k for sub in item.items for k in place(sub, after))
        for sub in item.items:
            after = place(sub, after)
        return after

    place(canvas, ())
    return nodes


def as_nodes(spec: Canvas | Sequence[Node]) -> Iterator[Node]:
    if isinstance(spec, Signature | Group | Chain):
        yield from nodes_of(spec)
    else:
        yield from spec
