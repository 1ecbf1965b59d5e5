"""Heartbeats under sustained load (issue 9, finding 9): no live lease expires.

With outcomes reported continuously, every heartbeat names some lease whose outcome is in
flight. A server that rejected such a heartbeat whole extended none of the live leases.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import Cluster, Database, scalar, wait_until

JOBS = 10_000


@pytest.fixture
def pg_cluster(tmp_path: Path, pg_databases: Any) -> Iterator[Cluster]:
    made = Cluster(tmp_path, Database("postgres", pg_databases.create()))
    try:
        yield made
    finally:
        made.stop()


@pytest.mark.timeout(240)  # the bound below, submitting, and the cluster's start and stop
def test_ten_thousand_jobs_over_many_heartbeat_intervals_let_no_live_lease_expire(
    pg_cluster: Cluster,
) -> None:
    # Given a 6s lease (a heartbeat every 2s) and a worker running 1,000 jobs at once. The
    # lease is what the server's latency may reach before a live lease expires: on 2 busy
    # cores a heartbeat of 500 leases has taken over 3s (issue 11 is making it fast).
    url = pg_cluster.database.url
    pg_cluster.start_server(JQ_DEFAULT_LEASE_TIMEOUT="6s")
    pg_cluster.start_worker("--concurrency", "1000")
    # When 10,000 jobs of 0-1s each complete continuously for many heartbeat intervals
    rng = random.Random(9)
    with pg_cluster.client() as client:
        client.submit_many(
            {"type": "sleep", "payload": {"seconds": rng.uniform(0, 1.0)}} for _ in range(JOBS)
        )
    wait_until(
        lambda: scalar(url, "SELECT count(*) FROM jobs WHERE state = 'succeeded'") == JOBS,
        # Generous: how fast is for `make bench`; this test asks only that no lease expire.
        timeout=180,
        what="all jobs to succeed",
    )
    # Then no live lease expired: each job ran once, under its first attempt
    assert scalar(url, "SELECT count(*) FROM job_events WHERE kind = 'lease_expired'") == 0
    assert scalar(url, "SELECT max(attempt) FROM jobs") == 1
