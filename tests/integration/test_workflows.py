"""Workflows end to end on the in-process server, on SQLite and PostgreSQL (ADR 0016)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
from pathlib import Path
from typing import Any

import pytest

from jobq.client import AsyncClient, Node, chain, chord, group, sig
from jobq.core.errors import FailedPrecondition, InvalidArgument, NotFound
from jobq.core.model import LeaseRef, Outcome, OutcomeKind
from jobq.core.states import EventKind, JobState
from jobq.examples import echo
from jobq.server.app import ServerApp
from jobq.testing import ServerThread
from jobq.worker.connection import WorkerConnection
from jobq.worker.context import JobContext
from jobq.worker.task import Task
from tests.auth_keys import OWNER_KEY, WORKER_KEY
from tests.integration.backends import BACKENDS, database_url, running
from tests.integration.inprocess import running_worker
from tests.integration.test_sdk import ctl

S = JobState
WAIT = dt.timedelta(milliseconds=200)


@pytest.fixture(params=BACKENDS)
async def app(request: pytest.FixtureRequest, tmp_path: Path):
    url = database_url(request, request.param, tmp_path)
    async with running(
        url, scheduler_interval=dt.timedelta(milliseconds=50), database_pool_max=8
    ) as server:
        yield server


@pytest.fixture
async def client(app: ServerApp):
    async with AsyncClient(f"127.0.0.1:{app.grpc_port}", token=OWNER_KEY) as c:
        yield c


async def work(
    app: ServerApp,
    done: asyncio.Event,
    runs: list[tuple[str, float]],
    *,
    fail: frozenset[str] = frozenset(),
    batch: int = 100,
) -> None:
    """A fast worker loop on the worker protocol: lease a batch, record each run (key, time),
    report them all in one call; a job whose key is in `fail` fails for good."""
    connection = WorkerConnection(f"127.0.0.1:{app.grpc_port}", token=WORKER_KEY)
    try:
        await connection.register("", ["default"], batch, [])
        loop = asyncio.get_running_loop()
        while not done.is_set():
            jobs = await connection.lease(["default"], batch, WAIT, [])
            outcomes = []
            for job in jobs:
                key = (json.loads(job.payload) or {}).get("key", job.id)
                runs.append((key, loop.time()))
                lease = LeaseRef(job.id, job.attempt)
                if key in fail:
                    outcomes.append(Outcome(lease, OutcomeKind.FAILED, error="no", retryable=False))
                else:
                    outcomes.append(Outcome(lease, OutcomeKind.COMPLETED, result=json.dumps(key)))
            if outcomes:
                await connection.report(outcomes)
    finally:
        await connection.close()


def random_dag(rng: random.Random, size: int) -> dict[str, list[str]]:
    """Each node depends on up to 3 earlier ones (so no cycle), listed in shuffled order."""
    keys = [f"n{i}" for i in range(size)]
    graph = {
        key: rng.sample(keys[:i], k=min(i, rng.choice([0, 1, 1, 2, 3])))
        for i, key in enumerate(keys)
    }
    shuffled = list(graph.items())
    rng.shuffle(shuffled)
    return dict(shuffled)


async def finished(client: AsyncClient, workflow_id: str):
    async with asyncio.timeout(60):
        return await client.wait_workflow(workflow_id)


async def test_a_1000_node_random_dag_runs_every_node_once_after_its_parents(
    app: ServerApp, client: AsyncClient
) -> None:
    graph = random_dag(random.Random(15), 1000)
    nodes = [Node(k, "echo", {"key": k}, depends_on=ps) for k, ps in graph.items()]
    workflow = await client.submit_workflow(nodes, name="big")
    assert len(workflow.nodes) == 1000
    roots = {k for k, ps in graph.items() if not ps}
    assert {n.key for n in workflow.nodes if n.job.state is S.QUEUED} == roots
    assert all(n.job.state is S.WAITING for n in workflow.nodes if n.key not in roots)

    done = asyncio.Event()
    runs: list[tuple[str, float]] = []
    workers = [asyncio.create_task(work(app, done, runs)) for _ in range(2)]
    try:
        result = await finished(client, workflow.id)
    finally:
        done.set()
        await asyncio.gather(*workers)
    assert result.state == "succeeded"
    keys = [k for k, _ in runs]
    assert sorted(keys) == sorted(graph), "every node ran exactly once"
    started = dict(runs)
    finished_at = {n.key: n.job.finished_at for n in result.nodes}
    for key, parents in graph.items():
        for parent in parents:
            assert started[parent] < started[key], f"{key} ran before its parent {parent}"
            assert finished_at[parent] <= finished_at[key]


async def test_a_diamond_whose_branch_dead_letters_cancels_the_join_by_default(
    app: ServerApp, client: AsyncClient
) -> None:
    diamond = [
        Node("a", "echo", {"key": "a"}),
        Node("b", "echo", {"key": "b"}, depends_on=["a"]),
        Node("c", "echo", {"key": "c"}, depends_on=["a"]),
        Node("d", "echo", {"key": "d"}, depends_on=["b", "c"]),
    ]
    done = asyncio.Event()
    runs: list[tuple[str, float]] = []
    worker = asyncio.create_task(work(app, done, runs, fail=frozenset({"b"})))
    try:
        cancelled = await finished(client, (await client.submit_workflow(diamond)).id)
        waiting = await client.submit_workflow(diamond, on_failure="wait")
        async with asyncio.timeout(30):
            async for seen in client.watch_workflow(waiting.id):
                if (seen.node("b").state, seen.node("c").state) == (S.DEAD, S.SUCCEEDED):
                    break
    finally:
        done.set()
        await worker
    states = {n.key: n.job.state for n in cancelled.nodes}
    assert states == {"a": S.SUCCEEDED, "b": S.DEAD, "c": S.SUCCEEDED, "d": S.CANCELLED}
    assert cancelled.state == "failed"
    assert [k for k, _ in runs].count("d") == 0

    # on_failure=wait: d waits; replaying b (now succeeding) resumes the branch.
    got = await client.get_workflow(waiting.id)
    assert got.node("d").state is S.WAITING and got.state == "running"
    done = asyncio.Event()
    worker = asyncio.create_task(work(app, done, runs))
    try:
        assert await client.replay_dead(ids=[waiting.node("b").id]) == 1
        resumed = await finished(client, waiting.id)
    finally:
        done.set()
        await worker
    assert resumed.state == "succeeded"


async def test_cancelling_a_workflow_cancels_its_unfinished_nodes(
    app: ServerApp, client: AsyncClient
) -> None:
    workflow = await client.submit_workflow(chain(sig("echo", key="a"), sig("echo", key="b")))
    cancelled = await client.cancel_workflow(workflow.id, "not needed")
    assert {n.key: n.job.state for n in cancelled.nodes} == {"a": S.CANCELLED, "b": S.CANCELLED}
    assert cancelled.state == "failed"
    with pytest.raises(NotFound):
        await client.cancel_workflow("0190c6a1-7a3b-7cde-8f00-0123456789ab")


async def test_canvas_chain_group_and_chord_become_the_dag(client: AsyncClient) -> None:
    workflow = await client.submit_workflow(
        chain(sig("echo", key="first"), chord([sig("echo"), sig("echo")], sig("echo", key="sum")))
    )
    parents = {n.key: set(n.depends_on) for n in workflow.nodes}
    assert parents == {"first": set(), "1": {"first"}, "2": {"first"}, "sum": {"1", "2"}}
    again = await client.submit_workflow(group(sig("echo"), sig("echo")) | sig("echo"))
    assert {n.key: set(n.depends_on) for n in again.nodes} == {
        "1": set(),
        "2": set(),
        "3": {"1", "2"},
    }


async def test_a_bad_workflow_is_refused_naming_the_field(client: AsyncClient) -> None:
    cases = [
        ([Node("a", "echo", depends_on=["b"]), Node("b", "echo", depends_on=["a"])], "nodes"),
        ([Node("a", "echo", depends_on=["zz"])], "nodes[0].depends_on[0]"),
        ([Node("a", "echo"), Node("a", "echo")], "nodes[1].key"),
        ([Node("a", "Bad Type!")], "nodes[0].job.type"),
    ]
    for nodes, field in cases:
        with pytest.raises(InvalidArgument) as raised:
            await client.submit_workflow(nodes)
        assert raised.value.field == field
    assert (await client.list()).jobs == [], "nothing was stored"


async def test_another_tenants_workflow_is_not_found(app: ServerApp, client: AsyncClient) -> None:
    workflow = await client.submit_workflow([Node("a", "echo")], tenant="acme")
    _, key = await client.create_api_key(["submitter"], tenant="other")
    async with AsyncClient(f"127.0.0.1:{app.grpc_port}", token=key) as other:
        with pytest.raises(NotFound):
            await other.get_workflow(workflow.id)
        with pytest.raises(NotFound):
            await other.cancel_workflow(workflow.id)
    assert (await client.get_workflow(workflow.id)).node("a").state is S.QUEUED


async def test_every_workflow_transition_is_in_the_outbox(app: ServerApp, client: AsyncClient):
    workflow = await client.submit_workflow(chain(sig("echo", key="a"), sig("echo", key="b")))
    done = asyncio.Event()
    worker = asyncio.create_task(work(app, done, []))
    try:
        await finished(client, workflow.id)
    finally:
        done.set()
        await worker
    events = await app.store.events.unpublished(1000)
    b = workflow.node("b").id
    mine = [(e.kind, e.from_state, e.to_state) for e in events if e.job_id == b]
    assert mine == [
        (EventKind.SUBMITTED, None, S.WAITING),
        (EventKind.READY, S.WAITING, S.QUEUED),
        (EventKind.STARTED, S.QUEUED, S.RUNNING),
        (EventKind.SUCCEEDED, S.RUNNING, S.SUCCEEDED),
    ]
    assert all(e.details["workflow_id"] == workflow.id for e in events if e.job_id == b)


def test_jq_ctl_submits_a_workflow_from_a_file_watches_it_and_cancels_one(
    jobq_server: ServerThread, tmp_path: Path
) -> None:
    spec = {
        "name": "etl",
        "nodes": [
            {"key": "extract", "type": "echo", "payload": {"n": 1}},
            {"key": "load", "type": "echo", "depends_on": ["extract"]},
        ],
    }
    path = tmp_path / "etl.json"
    path.write_text(json.dumps(spec))
    submitted = ctl(jobq_server, "workflows", "submit", str(path), "--json")
    assert submitted.returncode == 0, submitted.stderr
    workflow = json.loads(submitted.stdout)
    assert [n["job"]["state"] for n in workflow["nodes"]] == ["queued", "waiting"]
    with jobq_server.worker(echo):
        watched = ctl(jobq_server, "workflows", "watch", workflow["id"])
    assert watched.returncode == 0, watched.stderr
    assert watched.stdout.strip().splitlines()[-1] == "succeeded: 2 succeeded"

    path.write_text(json.dumps(spec | {"on_failure": "wait"}))
    second = json.loads(ctl(jobq_server, "workflows", "submit", str(path), "--json").stdout)
    cancelled = ctl(jobq_server, "workflows", "cancel", second["id"], "--reason", "no")
    assert cancelled.returncode == 0, cancelled.stderr
    assert "failed" in cancelled.stdout and "cancelled" in cancelled.stdout
    bad = ctl(jobq_server, "workflows", "get", "nope")
    assert bad.returncode != 0 and "not found" in bad.stderr


async def _number(payload: Any, ctx: JobContext) -> Any:
    return payload


async def _total(payload: Any, ctx: JobContext) -> Any:
    parents = await ctx.parent_results()
    return {"sum": sum(parents.values()), "from": sorted(parents)}


def _sync_total(payload: Any, ctx: JobContext) -> Any:
    return sorted(ctx.parent_results_sync().items())


async def test_a_chord_callback_reads_its_parents_results_in_its_context(
    app: ServerApp, client: AsyncClient
) -> None:
    tasks = {
        "wf.number": Task("wf.number", _number),
        "wf.total": Task("wf.total", _total),
        "wf.sync_total": Task("wf.sync_total", _sync_total),
    }
    canvas = group(sig("wf.number", 2, key="two"), sig("wf.number", 40, key="forty")) | group(
        sig("wf.total", key="total"), sig("wf.sync_total", key="sync")
    )
    async with running_worker(app, tasks):
        workflow = await client.submit_workflow(canvas)
        done = await finished(client, workflow.id)
    assert done.state == "succeeded"
    assert done.node("total").result == {"sum": 42, "from": ["forty", "two"]}
    assert done.node("sync").result == [["forty", 40], ["two", 2]]
    # A worker that does not hold the lease is refused.
    connection = WorkerConnection(f"127.0.0.1:{app.grpc_port}", token=WORKER_KEY)
    try:
        await connection.register("", ["default"], 1, [])
        with pytest.raises(FailedPrecondition):
            await connection.parent_results(LeaseRef(done.node("total").id, 1))
    finally:
        await connection.close()
