"""Server replicas on one PostgreSQL: shared work, one leader, takeover, database restarts.

Real jq-server and jq-worker processes, a real PostgreSQL, loopback only.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from jobq import AsyncClient, Unavailable
from tests.auth_keys import OPERATOR_KEY, SUBMITTER_KEY
from tests.e2e.conftest import STARTUP, scalar, wait_until
from tests.e2e.replicas import LeaderSampler, Replicas
from tests.harness.services import postgres_server

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


def rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql).fetchall()  # type: ignore[arg-type]


async def submit_through(addresses: list[str], total: int, chunk: int = 500) -> int:
    """Submit `total` no-op jobs in batches, alternating batches between the servers."""
    clients = [AsyncClient(a, token=SUBMITTER_KEY) for a in addresses]
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


LEASE = 2.0  # the takeover queue's lease timeout, in seconds
MARGIN = 3.0  # scheduling slack on a loaded 2-core machine


def test_when_the_leader_dies_the_other_replica_takes_over_and_reaps(
    replicas: Replicas, database_url: str
) -> None:
    # Given two servers, and a job running on a worker attached to the leader
    a = replicas.start_server("a")
    b = replicas.start_server("b")
    leader = wait_until(lambda: replicas.leaders(), timeout=10, what="a leader")
    assert len(leader) == 1
    old, survivor = (a, b) if leader[0] is a else (b, a)

    async def submit() -> str:
        async with (
            AsyncClient(survivor.address, token=OPERATOR_KEY) as operator,
            AsyncClient(survivor.address, token=SUBMITTER_KEY) as client,
        ):
            await operator.create_queue(
                "takeover", lease_timeout=f"{LEASE}s", backoff_base="100ms", backoff_max="500ms"
            )
            return (await client.submit("replicas.hang_first", {}, queue="takeover")).id

    doomed = replicas.start_worker(old, "--queues", "takeover", "--concurrency", "1")
    job_id = asyncio.run(submit())
    state_sql = f"SELECT state FROM jobs WHERE id = '{job_id}'"
    wait_until(lambda: scalar(database_url, state_sql) == "running", what="attempt 1 to run")
    replicas.start_worker(survivor, "--queues", "takeover", "--concurrency", "1")

    # When the leader and that worker are killed without a chance to clean up
    killed_at = time.monotonic()
    doomed.signal(signal.SIGKILL)
    old.kill()

    # Then the survivor holds the leader lock within one lease period. This is the bound
    # the requirement sets ("within one lease period", plus slack), not a measurement.
    wait_until(lambda: survivor.leader() == 1, timeout=LEASE + MARGIN, what="the survivor to lead")
    took_over = time.monotonic() - killed_at
    # And it does the singleton work: the dead worker's lease is reaped and the job retried
    # on the surviving worker.
    wait_until(
        lambda: scalar(database_url, state_sql) == "succeeded",
        timeout=LEASE + 10,
        what="the job to be reaped and to succeed",
    )
    print(f"leader after {took_over:.2f}s, job done after {time.monotonic() - killed_at:.2f}s")
    kinds = [
        r[0]
        for r in rows(
            database_url, f"SELECT kind FROM job_events WHERE job_id = '{job_id}' ORDER BY seq"
        )
    ]
    assert "lease_expired" in kinds, kinds
    assert kinds.count("succeeded") == 1, kinds
    assert scalar(database_url, f"SELECT attempt FROM jobs WHERE id = '{job_id}'") == 2


@dataclass
class Attempt:
    started: float
    ended: float
    job_id: str = ""  # set when Submit returned OK
    error: Exception | None = None


class Submitter:
    """Submits jobs one at a time from a few concurrent loops, in a thread of its own."""

    def __init__(self, address: str, loops: int = 4, limit: float = 45.0) -> None:
        self.address = address
        self.loops = loops
        self.limit = limit
        self.attempts: list[Attempt] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> Submitter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)

    def ok_since(self, since: float) -> int:
        return sum(1 for a in self.attempts if a.job_id and a.started > since)

    async def _run(self) -> None:
        deadline = time.monotonic() + self.limit
        async with AsyncClient(self.address, token=SUBMITTER_KEY) as client:

            async def loop(n: int) -> None:
                i = 0
                while not self._stop.is_set() and time.monotonic() < deadline:
                    i += 1
                    attempt = Attempt(time.monotonic(), 0.0)
                    try:
                        job = await client.submit(
                            "replicas.noop", {"loop": n, "i": i}, queue="replicas"
                        )
                        attempt.job_id = job.id
                    except Exception as exc:  # recorded: anything but Unavailable fails the test
                        attempt.error = exc
                        await asyncio.sleep(0.05)
                    attempt.ended = time.monotonic()
                    self.attempts.append(attempt)

            await asyncio.gather(*(loop(n) for n in range(self.loops)))


DOWN_FOR = 3.0


def test_a_database_restart_under_load_loses_no_acknowledged_job(tmp_path: Path) -> None:
    with postgres_server() as pg:
        pg.execute("CREATE DATABASE jobq")
        url = pg.url("jobq")
        replicas = Replicas(tmp_path, url)
        try:
            # Given a server and a worker on PostgreSQL, and clients submitting continuously
            # A request waits at most 1 s for a database connection, so the 3 s outage is
            # seen by clients (as UNAVAILABLE) rather than waited out.
            server = replicas.start_server("server", JQ_DATABASE_POOL_TIMEOUT="1s")
            replicas.start_worker(server, "--queues", "replicas", "--concurrency", "20")
            with Submitter(server.address) as submitter:
                wait_until(lambda: submitter.ok_since(0) >= 200, what="submits before the outage")

                # When PostgreSQL stops abruptly, stays down ~3 s (and until the server has
                # said so: on a loaded machine its probe may take longer), and starts again
                down_at = time.monotonic()
                pg.kill(signal.SIGQUIT)  # what `pg_ctl stop -m immediate` sends
                wait_until(lambda: server.ready_status() == 503, timeout=30, what="/readyz 503")
                time.sleep(max(0.0, DOWN_FOR - (time.monotonic() - down_at)))
                pg.launch()
                up_at = time.monotonic()
                wait_until(lambda: server.ready_status() == 200, STARTUP, what="/readyz 200")
                ready_after = time.monotonic() - up_at
                wait_until(
                    lambda: submitter.ok_since(up_at) >= 200,
                    timeout=30,
                    what="submits to succeed again",
                )
            ok = [a.job_id for a in submitter.attempts if a.job_id]
            errors = [a for a in submitter.attempts if a.error is not None]
            print(
                f"{len(ok)} submits OK, {len(errors)} failed; ready {ready_after:.2f}s after"
                f" restart; errors: {sorted({type(a.error).__name__ for a in errors})}"
            )

            # Then clients were told UNAVAILABLE while it was down, and never INTERNAL
            assert errors, "no submit failed while PostgreSQL was down"
            assert all(isinstance(a.error, Unavailable) for a in errors), [
                f"{type(a.error).__name__}: {a.error}" for a in errors
            ]
            assert all(a.ended >= down_at - 1 for a in errors), "failures before the outage"
            # And the server process stayed up: its pool recovered without a restart
            assert server.proc.popen.poll() is None
            # And no call from anyone (workers included) ended in INTERNAL
            assert '"rpc failed"' not in server.proc.output()
            # And every acknowledged job exists and completes
            wait_until(
                lambda: (
                    scalar(url, "SELECT count(*) FROM jobs WHERE state = 'succeeded'") >= len(ok)
                ),
                timeout=30,
                interval=0.5,
                what="acknowledged jobs to complete",
            )
            with psycopg.connect(url, autocommit=True) as conn:
                stored = {
                    str(r[0]) for r in conn.execute("SELECT id FROM jobs WHERE state = 'succeeded'")
                }
            assert set(ok) <= stored, f"{len(set(ok) - stored)} acknowledged jobs lost"
        finally:
            replicas.stop()
            pg.kill(signal.SIGINT)  # a fast shutdown
