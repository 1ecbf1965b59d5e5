"""Each overlap policy with a real worker and a job slower than the interval: a schedule
every second of a task that runs 2.5 s, one schedule per policy, side by side on one
jq-server (PostgreSQL) and one jq-worker."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from jobq import AsyncClient
from tests.auth_keys import OPERATOR_KEY
from tests.e2e.replicas import Replicas

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]  # a server, a worker, 13 s of firing

POLICIES = ("skip", "allow", "buffer_one", "cancel_previous")
RUN_FOR = 9.0


@pytest.fixture
def replicas(tmp_path: Path, pg_databases: Any) -> Iterator[Replicas]:
    made = Replicas(tmp_path, str(pg_databases.create()))
    try:
        yield made
    finally:
        made.stop()


def jobs_of(url: str, schedule_id: str) -> list[dict[str, Any]]:
    with psycopg.connect(url, autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
        return conn.execute(
            "SELECT r.fire_at, j.state, j.cancel_requested, j.started_at, j.finished_at"
            " FROM schedule_runs r JOIN jobs j ON j.id = r.job_id"
            " WHERE r.schedule_id = %s ORDER BY r.fire_at",
            (schedule_id,),
        ).fetchall()


def outcomes_of(url: str, schedule_id: str) -> list[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT outcome FROM schedule_runs WHERE schedule_id = %s ORDER BY fire_at",
            (schedule_id,),
        ).fetchall()
    return [r[0] for r in rows]


def overlapping(jobs: list[dict[str, Any]]) -> bool:
    ran = [j for j in jobs if j["started_at"] is not None]
    far = dt.datetime.max.replace(tzinfo=dt.UTC)
    return any(
        b["started_at"] < (a["finished_at"] or far) for i, a in enumerate(ran) for b in ran[i + 1 :]
    )


def test_each_overlap_policy_with_a_job_slower_than_the_interval(replicas: Replicas) -> None:
    # A 3 s lease: workers heartbeat every second, and a heartbeat is what carries a cancel
    # to the worker, so cancel_previous's request reaches a 2.5 s run before it ends.
    server = replicas.start_server(
        "a", JQ_SCHEDULER_INTERVAL="100ms", JQ_DEFAULT_LEASE_TIMEOUT="3s"
    )
    replicas.start_worker(server, "--queues", "overlap", "--concurrency", "8")

    async def create() -> dict[str, str]:
        async with AsyncClient(server.address, token=OPERATOR_KEY) as client:
            ids = {}
            for policy in POLICIES:
                made = await client.schedules.create(
                    policy.replace("_", "-"), interval="1s", type="replicas.slow",
                    queue="overlap", overlap=policy,
                )  # fmt: skip
                ids[policy] = made.id
            return ids

    async def pause() -> None:
        async with AsyncClient(server.address, token=OPERATOR_KEY) as client:
            for policy in POLICIES:
                await client.schedules.pause(policy.replace("_", "-"))

    ids = asyncio.run(create())
    time.sleep(RUN_FOR)
    asyncio.run(pause())
    time.sleep(4.0)  # the last runs finish
    url = replicas.database_url
    jobs = {p: jobs_of(url, ids[p]) for p in POLICIES}
    outcomes = {p: outcomes_of(url, ids[p]) for p in POLICIES}
    print({p: f"{len(jobs[p])} jobs, {outcomes[p].count('skipped')} skipped" for p in POLICIES})

    # skip: never two runs at once; fire times during a run are skipped
    assert not overlapping(jobs["skip"])
    assert "skipped" in outcomes["skip"] and len(jobs["skip"]) >= 2
    # allow: every fire time submitted, and runs overlap
    assert set(outcomes["allow"]) == {"submitted"}
    assert overlapping(jobs["allow"])
    # buffer_one: never two at once, and a buffered fire time ran after the one before it,
    # more than an interval after its fire time
    assert not overlapping(jobs["buffer_one"])
    assert any(
        j["started_at"] - j["fire_at"] > dt.timedelta(seconds=1) for j in jobs["buffer_one"][1:]
    )
    assert len(jobs["buffer_one"]) > len(jobs["skip"]) - 1
    # cancel_previous: each run but the last was cancelled by the next fire time
    previous = jobs["cancel_previous"][:-1]
    assert len(previous) >= 3
    assert all(j["cancel_requested"] or j["state"] == "cancelled" for j in previous)
    assert any(j["state"] == "cancelled" for j in previous)
