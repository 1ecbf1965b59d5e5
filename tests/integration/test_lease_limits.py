"""Concurrency caps and rate limits at lease time, through the in-process server (ADR 0017).

Runs are recorded as (key, start, finish) by the tasks themselves: a run lies inside its
lease, so runs that never overlap beyond a cap show the leases did not either.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from jobq.client import AsyncClient
from jobq.core.states import JobState
from jobq.server.app import ServerApp
from jobq.worker.connection import WorkerConnection
from jobq.worker.task import Task
from tests.auth_keys import OWNER_KEY, WORKER_KEY
from tests.harness.redis import redis_server
from tests.intervals import most_at_once

from .inprocess import running_server, running_worker

LIVENESS = 60.0  # seconds: work not done by then is stalled, not slow


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ServerApp]:
    async with running_server(tmp_path) as app:
        yield app


@pytest.fixture
async def client(server: ServerApp) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(f"127.0.0.1:{server.grpc_port}", token=OWNER_KEY) as c:
        yield c


def slots_in_use(server: ServerApp, queue: str) -> float | None:
    return server.metrics.registry.get_sample_value("jq_cap_slots_in_use", {"queue": queue})


async def wait_all_final(client: AsyncClient, ids: list[str]) -> list[Any]:
    deadline = time.monotonic() + LIVENESS
    while True:
        jobs = [await client.get(i) for i in ids]
        if all(j.state is JobState.SUCCEEDED for j in jobs):
            return jobs
        assert time.monotonic() < deadline, [j.state for j in jobs]
        await asyncio.sleep(0.1)


async def test_per_key_and_queue_caps_hold_even_while_a_worker_vanishes_mid_lease(
    server: ServerApp, client: AsyncClient
) -> None:
    # Given a queue capped at 3 running jobs, 1 per customer, with a 1 s lease
    await client.create_queue(
        "capped",
        concurrency_limit=3,
        key_concurrency_limit=1,
        lease_timeout=dt.timedelta(seconds=1),
    )
    keys = [f"cust-{i}" for i in range(5)]
    # And a worker that leases one job of cust-0 and then vanishes (no heartbeat, no outcome)
    doomed = await client.submit("run", {"key": "cust-0"}, queue="capped", concurrency_key="cust-0")
    ghost = WorkerConnection(f"127.0.0.1:{server.grpc_port}", token=WORKER_KEY)
    await ghost.register("ghost", ["capped"], 1, [])
    (held,) = await ghost.lease(["capped"], 1, dt.timedelta(0), [])
    assert held.id == doomed.id
    lease_expires_at = (await client.get(held.id)).lease_expires_at
    assert lease_expires_at is not None
    ghost_held_until = lease_expires_at.timestamp()
    await ghost.close()
    # And a backlog of 40 jobs over 5 customers
    ids = [doomed.id]
    for n in range(40):
        key = keys[n % 5]
        ids.append(
            (await client.submit("run", {"key": key}, queue="capped", concurrency_key=key)).id
        )
    runs: dict[str, list[tuple[float, float]]] = {k: [] for k in keys}

    async def run(payload: Any) -> None:
        started = time.time()
        await asyncio.sleep(0.02)
        runs[payload["key"]].append((started, time.time()))

    # When two live workers of 4 slots each work the backlog off
    task = Task("run", run, queue="capped")
    async with running_worker(server, {"run": task}), running_worker(server, {"run": task}):
        await wait_all_final(client, ids)
        # And once all ran, the slots in use read 0 again (the workers' next leases find
        # nothing to start and count the queue's running jobs anew)
        deadline = time.monotonic() + LIVENESS
        while slots_in_use(server, "capped") != 0:
            assert time.monotonic() < deadline, slots_in_use(server, "capped")
            await asyncio.sleep(0.05)
    # Then no customer ever had two jobs running, and the queue never more than 3
    for key in keys:
        assert most_at_once(runs[key]) == 1, key
    assert most_at_once([r for rs in runs.values() for r in rs]) <= 3
    # And while the vanished worker's lease held cust-0's slot, no cust-0 job started
    assert all(start >= ghost_held_until for start, _ in runs["cust-0"])
    # And its slot came back after the lease expired: its job was run again, with the rest
    assert len(runs["cust-0"]) == 9
    doomed_now = await client.get(doomed.id)
    assert doomed_now.state is JobState.SUCCEEDED and doomed_now.attempt == 2


async def test_a_rate_limited_queue_starts_exactly_its_burst_at_once(
    server: ServerApp, client: AsyncClient
) -> None:
    # Given a queue limited to 1 job per 1000 s with a burst of 3, and 10 jobs queued
    await client.create_queue("trickle", rate_limit=0.001, rate_burst=3)
    for _ in range(10):
        await client.submit("run", None, queue="trickle")
    worker = WorkerConnection(f"127.0.0.1:{server.grpc_port}", token=WORKER_KEY)
    try:
        await worker.register("", ["trickle"], 10, [])
        # When a worker asks for 10, twice
        first = await worker.lease(["trickle"], 10, dt.timedelta(0), [])
        second = await worker.lease(["trickle"], 10, dt.timedelta(0), [])
    finally:
        await worker.close()
    # Then only the burst started, the rest stay queued and leasable later
    assert (len(first), len(second)) == (3, 0)
    stats = (await client.queue_stats("trickle"))[0]
    assert stats.by_state["queued"] == 7
    # And the jobs held back were counted (7 on the first call, 7 again on the second)
    throttled = server.metrics.registry.get_sample_value(
        "jq_lease_throttled_total", {"queue": "trickle", "reason": "rate"}
    )
    assert throttled == 14


async def test_tenants_weighted_3_to_1_share_a_worker_pool_3_to_1(tmp_path: Path) -> None:
    # Given tenants weighted 3:1 (JQ_TENANT_WEIGHTS), each with a backlog in queue "work"
    async with (
        running_server(tmp_path, tenant_weights="big=3,small=1") as app,
        AsyncClient(f"127.0.0.1:{app.grpc_port}", token=OWNER_KEY) as client,
    ):
        tenant_of: dict[str, str] = {}
        for tenant in ("big", "small"):
            made = await client.submit_many(
                {"type": "run", "queue": "work", "tenant": tenant} for _ in range(300)
            )
            tenant_of |= {m.job.id: tenant for m in made}
        # When a worker serving "work" in every tenant leases 200 jobs, one at a time
        worker = WorkerConnection(f"127.0.0.1:{app.grpc_port}", token=WORKER_KEY)
        try:
            await worker.register("", ["work"], 1, [])
            tenants = [
                tenant_of[(await worker.lease(["work"], 1, dt.timedelta(0), []))[0].id]
                for _ in range(200)
            ]
        finally:
            await worker.close()
    # Then they started 3:1, although both backlogs were the same
    assert tenants.count("big") / tenants.count("small") == pytest.approx(3, abs=0.3)


async def test_a_tenant_wide_cap_holds_across_its_queues(tmp_path: Path) -> None:
    # Given tenant "capt" capped at 2 running jobs in all (JQ_TENANT_CONCURRENCY_LIMITS),
    # with backlogs in two queues that have no cap of their own
    async with (
        running_server(tmp_path, tenant_concurrency_limits="capt=2") as app,
        AsyncClient(f"127.0.0.1:{app.grpc_port}", token=OWNER_KEY) as client,
    ):
        ids = []
        for queue in ("qa", "qb"):
            for _ in range(12):
                ids.append((await client.submit(queue, None, queue=queue, tenant="capt")).id)
        runs: list[tuple[float, float]] = []

        async def run(payload: Any) -> None:
            started = time.time()
            await asyncio.sleep(0.02)
            runs.append((started, time.time()))

        tasks = {q: Task(q, run, queue=q) for q in ("qa", "qb")}
        # When two workers of 4 slots each serve both queues
        async with running_worker(app, tasks), running_worker(app, tasks):
            await wait_all_final(client, ids)
    # Then never more than 2 of the tenant's jobs ran at once
    assert len(runs) == 24
    assert most_at_once(runs) == 2


async def test_with_redis_stopped_leasing_goes_on_on_local_rates_and_caps_still_hold(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with redis_server() as redis:
        async with (
            running_server(tmp_path, redis_url=redis.url) as app,
            AsyncClient(f"127.0.0.1:{app.grpc_port}", token=OWNER_KEY) as client,
        ):
            # Given a queue with a rate (decided in Redis) and one job at a time per key
            await client.create_queue(
                "keyed", rate_limit=1000.0, rate_burst=100, key_concurrency_limit=1
            )
            key_of: dict[str, str] = {}
            for key in ("a", "a", "b", "b", "c", "c"):
                job = await client.submit("run", None, queue="keyed", concurrency_key=key)
                key_of[job.id] = key
            worker = WorkerConnection(f"127.0.0.1:{app.grpc_port}", token=WORKER_KEY)
            try:
                await worker.register("", ["keyed"], 10, [])
                up = await worker.lease(["keyed"], 1, dt.timedelta(0), [])
                assert (
                    len(up) == 1
                    and app.metrics.registry.get_sample_value("jq_rate_limit_local") == 0
                )
                # When Redis is stopped
                redis.kill()
                down = await worker.lease(["keyed"], 10, dt.timedelta(0), [])
                again = await worker.lease(["keyed"], 10, dt.timedelta(0), [])
            finally:
                await worker.close()
            # Then leasing went on from local buckets, said so once, and every key still
            # ran one job at a time: the two keys not yet running got one each, no more
            assert sorted(key_of[j.id] for j in up + down) == ["a", "b", "c"]
            assert again == []
            assert app.metrics.registry.get_sample_value("jq_rate_limit_local") == 1
            local = [r for r in caplog.records if "local buckets" in r.getMessage()]
            assert len(local) == 1
            # And each of the three leases counted the 3 jobs its key caps held back
            held_back = app.metrics.registry.get_sample_value(
                "jq_lease_throttled_total", {"queue": "keyed", "reason": "key_cap"}
            )
            assert held_back == 9


async def test_jq_ctl_sets_and_shows_a_queues_limits(
    server: ServerApp, client: AsyncClient
) -> None:
    jq_ctl = str(Path(sys.executable).parent / "jq-ctl")
    env = {
        "PATH": "/usr/bin:/bin",
        "JQ_SERVER_ADDRESS": f"127.0.0.1:{server.grpc_port}",
        "JQ_TOKEN": OWNER_KEY,
        "COLUMNS": "250",
        "NO_COLOR": "1",
    }

    def ctl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([jq_ctl, *args], env=env, capture_output=True, text=True, timeout=60)

    await client.create_queue("api")
    # When an operator sets the limits with jq-ctl
    done = await asyncio.to_thread(
        ctl, "queues", "update", "api", "--rate", "200", "--burst", "50", "--key-rate", "2",
        "--key-concurrency", "1",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # Then the server holds them, and `queues list` shows them
    queue = await client.get_queue("api")
    assert (queue.rate_limit, queue.rate_burst, queue.key_rate_limit) == (200.0, 50, 2.0)
    assert (queue.key_rate_burst, queue.key_concurrency_limit) == (0, 1)
    listed = await asyncio.to_thread(ctl, "queues", "list")
    assert "rate 200/s burst 50, per key 2/s burst 1, per key 1 running" in listed.stdout
    # And a bad value is refused naming the field
    bad = await asyncio.to_thread(ctl, "queues", "update", "api", "--rate", "-1")
    assert bad.returncode != 0 and "rate_limit" in bad.stderr + bad.stdout
