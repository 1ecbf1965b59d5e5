"""jq-server replicas on one PostgreSQL sharing a real Redis (standalone or a cluster).

Only PostgreSQL here: replicas need a shared database, and SQLite has one server.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import random
import signal
import threading
import time
from pathlib import Path

import pytest

from jobq.client import AsyncClient, Client
from jobq.core.states import TERMINAL_STATES, JobState
from tests.auth_keys import OPERATOR_KEY, SUBMITTER_KEY
from tests.harness.redis import redis_cluster, redis_server
from tests.intervals import most_at_once

from .conftest import Cluster, Replica, wait_until

pytestmark = pytest.mark.e2e

GETS = "jq_db_query_duration_seconds_count"
WATCHERS = 20


async def watch_to_end(client: AsyncClient, job_id: str) -> list[JobState]:
    states = []
    async for job in client.watch(job_id):
        states.append(job.state)
    return states


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
async def test_a_change_through_one_replica_reaches_watchers_on_another_by_pub_sub(
    cluster: Cluster, redis_server
) -> None:
    # Given two replicas sharing Redis, and a worker on replica A
    redis_server.flush()
    cluster.env["JQ_REDIS_URL"] = redis_server.url
    a = cluster.start_replica("replica-a")
    b = cluster.start_replica("replica-b")
    cluster.start_worker(JQ_SERVER_ADDRESS=a.address)
    gets_before = cluster.metric(GETS, b.http_port, operation="jobs.get")

    # When 20 clients watch on replica B a job that A's worker runs for 3 s
    async with (
        AsyncClient(a.address, token=SUBMITTER_KEY) as on_a,
        AsyncClient(b.address, token=SUBMITTER_KEY) as on_b,
    ):
        job = await on_a.submit("block", {"seconds": 3})
        seen = await asyncio.wait_for(
            asyncio.gather(*(watch_to_end(on_b, job.id) for _ in range(WATCHERS))), 60
        )

    # Then every watcher on B saw the end that A's worker reported through A
    assert all(states[-1] is JobState.SUCCEEDED for states in seen), seen
    # And B heard A's changes on pub/sub
    assert cluster.metric("jq_job_changes_received_total", b.http_port) > 0
    # And PostgreSQL was not polled per watcher: 20 watchers polling each second for 3 s
    # would read the job at least 60 times; through the shared cache B read it a few times.
    gets = cluster.metric(GETS, b.http_port, operation="jobs.get") - gets_before
    print(f"replica B read the job {gets:.0f} times for {WATCHERS} watchers")  # -s shows it
    assert gets < WATCHERS, f"replica B read the job {gets} times for {WATCHERS} watchers"


def all_finished(client: Client, ids: list[str]) -> bool:
    return all(client.get(i).state in TERMINAL_STATES for i in ids)


OUTAGE = 60.0  # the figure
QUEUE = "capped"
QUEUE_CAP, KEY_CAP = 3, 1
KEYS = ("cust-0", "cust-1", "cust-2", "cust-3")


@dataclasses.dataclass
class Run:
    job_id: str
    attempt: int
    pid: int
    key: str
    start: float
    end: float | None = None


def read_runs(path: Path) -> list[Run]:
    """The runs the `timed` task recorded (tests/e2e/e2e_tasks.py), in start order."""
    runs: dict[tuple[str, int], Run] = {}
    for line in path.read_text().splitlines():
        what, job_id, attempt, pid, key, at = line.split()
        if what == "start":
            runs[(job_id, int(attempt))] = Run(job_id, int(attempt), int(pid), key, float(at))
        else:
            runs[(job_id, int(attempt))].end = float(at)
    return sorted(runs.values(), key=lambda r: r.start)


def log_lines(replica: Replica, text: str) -> list[str]:
    return [line for line in replica.proc.output().splitlines() if text in line]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("database", ["postgres"], indirect=True)
def test_redis_stopped_60_s_under_load_costs_no_client_error_no_job_and_no_cap(
    cluster: Cluster,
) -> None:
    with redis_server() as redis:
        # Given two replicas on one Redis, a worker on each, and a queue capped at 3 running
        # jobs and 1 per customer, limited to 10 starts a second, with a 4 s lease
        executions = cluster.tmp / "executions.log"
        executions.touch()
        cluster.env |= {"JQ_REDIS_URL": redis.url, "JQ_TEST_EXECUTIONS": str(executions)}
        a = cluster.start_replica("replica-a")
        b = cluster.start_replica("replica-b")
        with Client(a.address, token=OPERATOR_KEY) as operator:
            operator.create_queue(
                QUEUE,
                concurrency_limit=QUEUE_CAP,
                key_concurrency_limit=KEY_CAP,
                rate_limit=10.0,
                rate_burst=5,
                lease_timeout="4s",
            )
        workers = {
            r.address: cluster.start_worker(
                "--queues", QUEUE, "--concurrency", "4", JQ_SERVER_ADDRESS=r.address
            )
            for r in (a, b)
        }
        killed_at: dict[int, float] = {}  # worker pid -> time.time() of its SIGKILL

        def kill_worker(replica: Replica) -> None:
            victim = workers[replica.address]
            # While it runs a job, so that the job's slot is held by a dead worker
            wait_until(
                lambda: any(r.pid == victim.pid and r.end is None for r in read_runs(executions)),
                timeout=30,
                interval=0.01,
                what="the worker to kill to run a job",
            )
            killed_at[victim.pid] = time.time()
            victim.signal(signal.SIGKILL)
            victim.wait(10)
            workers[replica.address] = cluster.start_worker(
                "--queues", QUEUE, "--concurrency", "4", JQ_SERVER_ADDRESS=replica.address
            )

        clients = [Client(a.address, token=SUBMITTER_KEY), Client(b.address, token=SUBMITTER_KEY)]
        ids: list[str] = []
        errors: list[BaseException] = []
        stop = threading.Event()

        def submit_and_read() -> None:
            """Through both replicas in turn, until told to stop: each error is kept."""
            rng = random.Random(12)
            n = 0
            while not stop.is_set():
                client, key = clients[n % 2], KEYS[n % len(KEYS)]
                payload = {"key": key, "ms": rng.randint(150, 400)}
                try:
                    ids.append(client.submit("timed", payload, queue=QUEUE, concurrency_key=key).id)
                    client.get(ids[n // 2])
                except Exception as exc:
                    errors.append(exc)
                n += 1
                time.sleep(0.2)

        submitter = threading.Thread(target=submit_and_read, daemon=True)
        local_during: list[float] = []
        try:
            # When clients submit and read through both replicas throughout, Redis is stopped
            # (SIGSTOP: calls hang, as on a stalled node) for 60 s, and meanwhile a worker on
            # each replica is SIGKILLed while it runs a job
            submitter.start()
            script = [
                (3.0, redis.pause),
                (3.0 + 20, lambda: kill_worker(a)),
                (3.0 + 30, lambda: local_during.extend(
                    cluster.metric(m, r.http_port)
                    for m in ("jq_rate_limit_local", "jq_redis_fallback") for r in (a, b)
                )),
                (3.0 + 40, lambda: kill_worker(b)),
                (3.0 + OUTAGE, redis.resume),
                (3.0 + OUTAGE + 5, stop.set),
            ]  # fmt: skip
            begun = time.monotonic()
            for at, step in script:
                time.sleep(max(0.0, begun + at - time.monotonic()))
                step()
            submitter.join(60)
            assert not submitter.is_alive()
            # Then no client call failed
            assert errors == []
            # Then every acknowledged job succeeded
            wait_until(lambda: all_finished(clients[0], ids), timeout=120, what="all jobs")
            assert {clients[1].get(i).state for i in ids} == {JobState.SUCCEEDED}
            runs = read_runs(executions)
            # And each finished once: a job ran again only after its worker was killed
            # running it, and its last run ended
            by_job: dict[str, list[Run]] = collections.defaultdict(list)
            for run in runs:
                by_job[run.job_id].append(run)
            assert set(by_job) == set(ids)
            for job_id, its_runs in by_job.items():
                assert its_runs[-1].end is not None, its_runs
                assert all(r.pid in killed_at for r in its_runs[:-1]), (job_id, its_runs)
            assert len(runs) > len(ids), "no kill hit a running job"
            # And no customer ever had two jobs running, nor the queue more than 3: a run
            # without an end lasted at least until its worker was killed
            spans = [(r.key, (r.start, killed_at[r.pid] if r.end is None else r.end)) for r in runs]
            for key in KEYS:
                assert most_at_once([span for k, span in spans if k == key]) <= KEY_CAP
            assert most_at_once([span for _, span in spans]) <= QUEUE_CAP
            # And during the outage both replicas decided rates locally and said so once
            assert local_during == [1.0] * 4
            for replica in (a, b):
                assert 1 <= len(log_lines(replica, "coordination unavailable")) <= 2
                assert 1 <= len(log_lines(replica, "decided by local buckets")) <= 2
                assert '"rpc failed"' not in replica.proc.output()
            # And once Redis is back the limits are shared again, and after the kills every
            # slot is back: no slot in use (and all the jobs submitted after them ran)
            for replica in (a, b):
                wait_until(
                    lambda r=replica: (
                        cluster.metric("jq_rate_limit_local", r.http_port) == 0
                        and cluster.metric("jq_redis_fallback", r.http_port) == 0
                        and cluster.metric("jq_cap_slots_in_use", r.http_port, queue=QUEUE) == 0
                    ),
                    timeout=30,
                    what="limits shared again and no slot in use",
                )
                assert log_lines(replica, "rate limits shared across replicas again")
        finally:
            for client in clients:
                client.close()


# Each wait below has its own generous deadline; on a loaded machine together they may take
# longer than the default test timeout.
@pytest.mark.timeout(240)
@pytest.mark.parametrize("database", ["postgres"], indirect=True)
def test_a_killed_cluster_master_fails_over_and_service_continues(cluster: Cluster) -> None:
    with redis_cluster(replicas=1) as redis:
        # Given a server on a 3-master/3-replica cluster, and a worker
        cluster.env["JQ_REDIS_URL"] = redis.url
        cluster.start_server()
        cluster.start_worker()
        with Client(cluster.address, token=SUBMITTER_KEY) as client:
            ids = [client.submit("echo", {"n": n}).id for n in range(20)]
            for job_id in ids:
                client.get(job_id)
            # When one master is killed, clients keep submitting and reading until its replica
            # has taken over its slots
            victim = redis.kill_master()
            deadline = time.monotonic() + 60
            while not redis.failed_over(victim):
                assert time.monotonic() < deadline, "no replica took over the killed master"
                ids.append(client.submit("echo", {"n": len(ids)}).id)
                client.get(ids[-1])
            redis.wait_ok(timeout=30)
            # Then serving went on throughout, every job ran, and the cache is in use again
            wait_until(lambda: all_finished(client, ids), timeout=60, what="all jobs")
            assert {client.get(i).state for i in ids} == {JobState.SUCCEEDED}
            hits = cluster.metric("jq_status_cache_total", result="hit")

            def cache_used_again() -> bool:
                client.get(ids[-1])
                return (
                    cluster.metric("jq_redis_fallback") == 0
                    and cluster.metric("jq_status_cache_total", result="hit") > hits
                )

            wait_until(cache_used_again, timeout=30, interval=0.3, what="cache in use again")
            assert len(redis.masters()) == 3
            assert '"rpc failed"' not in cluster.procs[0].output()
