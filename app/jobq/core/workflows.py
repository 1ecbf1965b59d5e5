"""Workflows as data: a DAG of job specs by client-side key, checked and put in order.

Pure functions of the request (ADR 0016): every rule a workflow must meet is decided here,
before any store sees it, and a refusal names the request field it is about.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import re
from collections.abc import Sequence

from jobq.core.errors import InvalidArgument
from jobq.core.model import Job
from jobq.core.states import JobState

KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


class FailurePolicy(enum.StrEnum):
    """What a dead-lettered node does to the nodes that depend on it."""

    CANCEL = "cancel"  # its descendants are cancelled (the default)
    WAIT = "wait"  # they keep waiting: replaying the dead node resumes the branch


@dataclasses.dataclass(frozen=True, slots=True)
class NodeSpec:
    key: str
    depends_on: tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Workflow:
    id: str
    tenant: str
    name: str
    on_failure: FailurePolicy
    created_at: dt.datetime


@dataclasses.dataclass(frozen=True, slots=True)
class WorkflowRecord:
    """A workflow as stored: its row, its jobs (parents before children) and its edges."""

    workflow: Workflow
    jobs: list[Job]
    edges: list[tuple[str, str]]  # (parent job id, child job id)


@dataclasses.dataclass(frozen=True, slots=True)
class Edge:
    parent: int  # node indexes in the request
    child: int


def check_graph(nodes: Sequence[NodeSpec], max_nodes: int, field: str = "nodes") -> list[int]:
    """The node indexes in an order where every parent comes before its children; raises
    InvalidArgument naming the field for an empty or oversized graph, a bad or repeated key,
    an edge to a key not in the request, a self-edge or a cycle."""
    if not nodes:
        raise InvalidArgument(field, "must hold at least one node")
    if len(nodes) > max_nodes:
        raise InvalidArgument(field, f"{len(nodes)} nodes is over the limit of {max_nodes}")
    index: dict[str, int] = {}
    for i, node in enumerate(nodes):
        if not KEY.fullmatch(node.key):
            raise InvalidArgument(
                f"{field}[{i}].key",
                f"{node.key[:64]!r} is not a key (1-128 of letters, digits and ._:-, "
                "starting with a letter or digit)",
            )
        if node.key in index:
            raise InvalidArgument(f"{field}[{i}].key", f"{node.key!r} is used by an earlier node")
        index[node.key] = i
    children: list[list[int]] = [[] for _ in nodes]
    waiting = [0] * len(nodes)
    for i, node in enumerate(nodes):
        seen: set[str] = set()
        for j, parent in enumerate(node.depends_on):
            where = f"{field}[{i}].depends_on[{j}]"
            if parent not in index:
                raise InvalidArgument(where, f"{parent[:64]!r} is not the key of a node here")
            if parent == node.key:
                raise InvalidArgument(where, "a node cannot depend on itself")
            if parent in seen:
                raise InvalidArgument(where, f"{parent!r} is named twice")
            seen.add(parent)
            children[index[parent]].append(i)
            waiting[i] += 1
    # Kahn's algorithm: what never reaches zero parents left is on a cycle.
    order = [i for i, n in enumerate(waiting) if n == 0]
    left = list(waiting)
    for i in order:  # grows while it is walked
        for child in children[i]:
            left[child] -= 1
            if left[child] == 0:
                order.append(child)
    if len(order) < len(nodes):
        on_cycle = sorted(nodes[i].key for i, n in enumerate(left) if n > 0)
        raise InvalidArgument(
            field, f"the dependencies form a cycle through {', '.join(on_cycle[:10])}"
        )
    return order


def edges(nodes: Sequence[NodeSpec]) -> list[Edge]:
    index = {node.key: i for i, node in enumerate(nodes)}
    return [Edge(index[p], i) for i, node in enumerate(nodes) for p in node.depends_on]


def initial_node_state(parents: int, due: JobState) -> JobState:
    """A node with parents waits for them; a root starts as any job would (`due`)."""
    return JobState.WAITING if parents else due


def workflow_state(states: Sequence[JobState]) -> str:
    """A workflow's state, from its nodes': running until every node has finished,
    then succeeded if every one did, else failed (a node dead, cancelled or expired)."""
    finished = {JobState.SUCCEEDED, JobState.DEAD, JobState.CANCELLED, JobState.EXPIRED}
    if any(s not in finished for s in states):
        return "running"
    if all(s is JobState.SUCCEEDED for s in states):
        return "succeeded"
    return "failed"


def parent_keys(record: WorkflowRecord) -> dict[str, list[str]]:
    """Each node's parents by key (sorted), by the node's job id; a root has none listed."""
    key_of = {job.id: job.workflow_key or "" for job in record.jobs}
    parents: dict[str, list[str]] = {}
    for parent, child in record.edges:
        parents.setdefault(child, []).append(key_of.get(parent, ""))
    return {child: sorted(keys) for child, keys in parents.items()}
