"""Server replicas on one PostgreSQL: shared work, one leader, takeover, database restarts.

Real jq-server and jq-worker processes, a real PostgreSQL, loopback only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from jobq import AsyncClient
from tests.e2e.conftest import wait_until
from tests.e2e.replicas import LeaderSampler, Replicas

pytestmark = pytest.mark.e2e

JOBS = 10_000


@pytest.fixture
def database_url(pg_databases: Any) -> str:
    return str(pg_databases.create())


@pytest.fixture
def replicas(tmp_path: Path, database_url: str) -> Iterator[Replicas]:
    made = Replicas(tmp_path, database_url)
    try:
        yield made
    finally:
        made.stop()


def scalar(url: str, sql: str) -> Any:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(sql).fetchone()  # type: ignore[arg-type]
        return row[0] if row else None


def rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql).fetchall()  # type: ignore[arg-type]


async def submit_through(addresses: list[str], total: int, chunk: int = 500) -> int:
    """Submit `total` no-op jobs in batches, alternating batches between the servers."""
    clients = [AsyncClient(a) for a in addresses]
    try:

        async def one_server(i: int) -> int:
            specs = [
                {"type": "replicas.noop", "queue": "replicas", "payload": {"n": n}}
                for n in range(i, total, len(clients))
            ]
            return len(await clients[i].submit_many(specs, chunk=chunk))

        return sum(await asyncio.gather(*(one_server(i) for i in range(len(clients)))))
    finally:
        for c in clients:
            await c.aclose()


def test_two_replicas_share_the_work_and_elect_one_leader(
    replicas: Replicas, database_url: str
) -> None:
    # Given two servers on one database and four workers, two attached to each
    a = replicas.start_server("a")
    b = replicas.start_server("b")
    for server in (a, b, a, b):
        replicas.start_worker(server, "--queues", "replicas", "--concurrency", "50")
    wait_until(lambda: len(replicas.leaders()) == 1, timeout=10, what="one leader")

    # When 10,000 jobs are submitted in batches through both, while jq_leader is sampled
    started = time.monotonic()
    with LeaderSampler([a, b]) as sampler:
        assert asyncio.run(submit_through([a.address, b.address], JOBS)) == JOBS
        submitted = time.monotonic()
        wait_until(
            lambda: (
                scalar(database_url, "SELECT count(*) FROM jobs WHERE state = 'succeeded'") == JOBS
            ),
            timeout=60,
            interval=0.5,
            what="every job to succeed",
        )
    done = time.monotonic()
    print(f"submitted in {submitted - started:.1f}s, all succeeded after {done - started:.1f}s")

    # Then every job succeeded, with exactly one accepted completion each
    assert rows(database_url, "SELECT state, count(*) FROM jobs GROUP BY state") == [
        ("succeeded", JOBS)
    ]
    assert (
        rows(
            database_url,
            "SELECT job_id, count(*) FROM job_events WHERE kind = 'succeeded'"
            " GROUP BY job_id HAVING count(*) > 1",
        )
        == []
    )
    assert scalar(database_url, "SELECT count(*) FROM job_events WHERE kind = 'succeeded'") == JOBS
    # And the work was spread over both servers' workers
    per_worker = rows(
        database_url,
        "SELECT details->>'worker_id', count(*) FROM job_events WHERE kind = 'started' GROUP BY 1",
    )
    print(per_worker)
    assert len(per_worker) == 4, per_worker

    # And exactly one replica was the leader whenever both answered
    complete = [s for s in sampler.samples if s.complete]
    assert len(complete) >= 20, f"too few complete samples: {len(sampler.samples)} taken"
    assert max(s.total for s in complete) == 1, [s.values for s in complete if s.total != 1]
    assert min(s.total for s in complete) == 1, [s.values for s in complete if s.total != 1]
