"""Faults under load: workers, the server and PostgreSQL killed while recorded jobs run.

Every execution of the task is recorded (tests/e2e/fault_tasks.py) before it does its work,
so the test sees each run, finished or not, and compares them with the store's events:
an acknowledged job is never lost, and a job runs again only after a lease of it expired.
Real jq-server and jq-worker processes, a real PostgreSQL, loopback only.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.e2e.conftest import STARTUP, wait_until
from tests.e2e.faults import (
    Audit,
    BatchSubmitter,
    FaultCluster,
    audit,
    create_queue,
    wait_for_success,
)
from tests.harness.services import postgres_server

# Each run is bounded by its own deadlines; a loaded machine may need more than the default.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

WORKERS = 3
SETTLE = 60.0  # after the last fault, how long jobs may take to finish before they count as lost


def run_to_completion(cluster: FaultCluster, submitter: BatchSubmitter) -> Audit:
    submitter.join(submitter.limit + 15)
    acknowledged = set(submitter.acknowledged.values())
    wait_for_success(cluster.database_url, acknowledged, SETTLE)
    return audit(cluster, acknowledged)


def assert_nothing_lost(result: Audit) -> None:
    assert not result.lost, (
        f"{len(result.lost)} acknowledged jobs did not succeed:{result.describe_all(result.lost)}"
    )


@pytest.fixture
def session_db(pg_databases: Any) -> str:
    return str(pg_databases.create())


@pytest.fixture
def cluster_on(tmp_path: Path) -> Iterator[Callable[[str], FaultCluster]]:
    made: list[FaultCluster] = []

    def make(url: str) -> FaultCluster:
        made.append(FaultCluster(tmp_path, url))
        return made[-1]

    try:
        yield make
    finally:
        for c in made:
            c.stop()


# --- the control run: no faults, no duplicates ------------------------------------------------

CONTROL_JOBS = 2_000
CONTROL_LEASE = 3.0


def test_without_faults_every_job_runs_exactly_once(
    cluster_on: Callable[[str], FaultCluster], session_db: str
) -> None:
    # Given a server and three workers on PostgreSQL, on a queue with a 3 s lease
    cluster = cluster_on(session_db)
    cluster.start_server()
    asyncio.run(create_queue(cluster.address, CONTROL_LEASE))
    for _ in range(WORKERS):
        cluster.start_worker()

    # When 2,000 recorded jobs are submitted and run, and nothing fails
    started = time.monotonic()
    result = run_to_completion(cluster, BatchSubmitter(cluster.address, CONTROL_JOBS).start())
    print(f"control: {result.figures()}; {time.monotonic() - started:.1f}s")

    # Then every job succeeded, and each ran exactly once
    assert len(result.acknowledged) == CONTROL_JOBS
    assert_nothing_lost(result)
    duplicated = sorted(result.duplicated)
    assert not duplicated, (
        f"{len(duplicated)} jobs ran more than once with no fault at all:"
        f"{result.describe_all(duplicated)}"
    )
    assert result.executions == CONTROL_JOBS


# --- the fault run: workers, the server twice and PostgreSQL once ----------------------------

FAULT_JOBS = 5_000
FAULT_LEASE = 3.0
WORKER_KILL_EVERY = 3.0
PG_DOWN_FOR = 2.0


class Faults:
    """A fixed script of faults, each at its time or as soon as the one before it ends."""

    def __init__(self, cluster: FaultCluster, pg: Any, seed: int = 9) -> None:
        self.cluster = cluster
        self.pg = pg
        self.rng = random.Random(seed)
        self.done: list[str] = []

    def kill_worker(self) -> None:
        victim = self.rng.choice(self.cluster.workers)
        self.cluster.kill_worker(victim)
        # Not waiting for it to register: the server may be the next thing down.
        self.cluster.start_worker(wait=False)
        self.done.append(f"worker {victim.pid} killed")

    def kill_server(self) -> None:
        killed = time.monotonic()
        self.cluster.kill_server()
        self.cluster.start_server()  # same ports: clients and workers reconnect to it
        self.done.append(f"server killed, ready again after {time.monotonic() - killed:.1f}s")

    def stop_postgres(self) -> None:
        stopped = time.monotonic()
        self.pg.kill(signal.SIGQUIT)  # what `pg_ctl stop -m immediate` sends
        time.sleep(PG_DOWN_FOR)
        self.pg.launch()
        wait_until(self.cluster.ready, STARTUP, what="jq-server /readyz after PostgreSQL")
        self.done.append(
            f"PostgreSQL stopped, server ready again after {time.monotonic() - stopped:.1f}s"
        )

    def run(self) -> None:
        script: list[tuple[float, Callable[[], None]]] = [
            (1.0, self.kill_worker),
            (3.0, self.kill_server),
            (3.0 + WORKER_KILL_EVERY, self.kill_worker),
            (8.0, self.stop_postgres),
            (8.0 + WORKER_KILL_EVERY, self.kill_worker),
            (14.0, self.kill_server),
            (14.0 + WORKER_KILL_EVERY, self.kill_worker),
            (17.0 + WORKER_KILL_EVERY, self.kill_worker),
        ]
        start = time.monotonic()
        for at, fault in script:
            time.sleep(max(0.0, start + at - time.monotonic()))
            fault()


def test_faults_lose_no_job_and_every_rerun_follows_an_expired_lease(
    cluster_on: Callable[[str], FaultCluster],
) -> None:
    with postgres_server() as pg:
        pg.execute("CREATE DATABASE jobq")
        cluster = cluster_on(pg.url("jobq"))
        try:
            run_with_faults(cluster, pg)
        finally:
            cluster.stop()  # before PostgreSQL stops, so the server can stop cleanly


def run_with_faults(cluster: FaultCluster, pg: Any) -> None:
    # Given a server and three workers on PostgreSQL, on a queue with a 3 s lease
    cluster.start_server()
    asyncio.run(create_queue(cluster.address, FAULT_LEASE))
    for _ in range(WORKERS):
        cluster.start_worker()

    # When 5,000 recorded jobs are submitted, and while they run a worker is killed
    # every few seconds, the server is killed twice and PostgreSQL is stopped once
    started = time.monotonic()
    submitter = BatchSubmitter(cluster.address, FAULT_JOBS).start()
    faults = Faults(cluster, pg)
    faults.run()
    result = run_to_completion(cluster, submitter)
    print(
        f"faults: {result.figures()}; {time.monotonic() - started:.1f}s;"
        f" submit failures {dict(submitter.failures)}; {'; '.join(faults.done)}"
    )

    # Then every acknowledged job succeeded
    assert len(result.acknowledged) == FAULT_JOBS, (
        f"only {len(result.acknowledged)} of {FAULT_JOBS} jobs were acknowledged within"
        f" {submitter.limit}s of retries; failures: {dict(submitter.failures)}"
    )
    assert_nothing_lost(result)
    # And every run of a job but its last followed an attempt whose lease expired
    unexplained = result.unexplained()
    assert not unexplained, (
        f"{len(unexplained)} jobs ran again without an expired lease to explain it:"
        f"{result.describe_all(unexplained)}"
    )
    # And the faults did bite: workers died holding leases, and their jobs ran again
    assert result.duplicated, "no job ran twice: the faults did not hit running jobs"


# --- finding 5: a server restart shorter than the lease ---------------------------------------

RESTART_JOBS = 3_000
RESTART_LEASE = 5.0  # heartbeats every 5/3 s
SERVER_DOWN_FOR = 1.5  # before it is started again; start-up adds a second or two


def running_jobs(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM jobs WHERE state = 'running'").fetchone()
    return int(row[0]) if row else 0


def test_a_server_restart_shorter_than_the_lease_runs_no_job_twice(
    cluster_on: Callable[[str], FaultCluster], session_db: str
) -> None:
    # Given a server and three workers on PostgreSQL, on a queue with a 5 s lease,
    # running 3,000 recorded jobs
    cluster = cluster_on(session_db)
    cluster.start_server()
    asyncio.run(create_queue(cluster.address, RESTART_LEASE))
    for _ in range(WORKERS):
        cluster.start_worker()
    started = time.monotonic()
    submitter = BatchSubmitter(cluster.address, RESTART_JOBS).start()

    # When the server is killed twice, each time started again on the same port within
    # less than the lease, while the workers keep running (and holding their leases)
    outages: list[tuple[int, float]] = []  # (jobs running when killed, seconds until ready)
    for _ in range(2):
        wait_until(
            lambda: running_jobs(session_db) >= 10, timeout=30, what="jobs running on workers"
        )
        running = running_jobs(session_db)
        killed = time.monotonic()
        cluster.kill_server()
        time.sleep(SERVER_DOWN_FOR)
        cluster.start_server()
        outages.append((running, round(time.monotonic() - killed, 1)))
        time.sleep(RESTART_LEASE)  # the restarted server has had a full lease to reap in
    result = run_to_completion(cluster, submitter)
    print(
        f"server restarts: {result.figures()}; {time.monotonic() - started:.1f}s;"
        f" outages (jobs running, seconds down) {[(n, round(s, 1)) for n, s in outages]}"
    )

    # Then every job succeeded, and none ran twice: no worker died, so no lease of a
    # running job may have expired
    assert len(result.acknowledged) == RESTART_JOBS
    assert_nothing_lost(result)
    duplicated = sorted(result.duplicated)
    # The requirement covers outages shorter than the lease. One that was longer (a machine
    # too loaded to restart the server in time) does not excuse a duplicate here, but the
    # message says so, so that it is not read as the same defect.
    premise = (
        "each shorter than the lease"
        if all(down < RESTART_LEASE for _, down in outages)
        else f"NOT all shorter than the {RESTART_LEASE}s lease: the machine was too slow"
    )
    assert not duplicated, (
        f"{len(duplicated)} jobs held by live workers ran again after server restarts"
        f" (outages as (jobs running, seconds down): {outages}, {premise}):"
        f"{result.describe_all(duplicated)}"
    )
