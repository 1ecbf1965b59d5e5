"""jq-server replicas on one PostgreSQL sharing a real Redis (standalone or a cluster).

Only PostgreSQL here: replicas need a shared database, and SQLite has one server.
"""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from jobq.client import AsyncClient, Client
from jobq.core.states import TERMINAL_STATES, JobState
from tests.auth_keys import SUBMITTER_KEY
from tests.harness.redis import redis_cluster, redis_server

from .conftest import Cluster, wait_until

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


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
def test_redis_stopped_under_load_costs_no_client_error_and_no_job(cluster: Cluster) -> None:
    with redis_server() as redis:
        # Given two replicas on one Redis, a worker on each, and clients on both
        cluster.env["JQ_REDIS_URL"] = redis.url
        a = cluster.start_replica("replica-a")
        b = cluster.start_replica("replica-b")
        cluster.start_worker("--concurrency", "8", JQ_SERVER_ADDRESS=a.address)
        cluster.start_worker("--concurrency", "8", JQ_SERVER_ADDRESS=b.address)
        clients = [Client(a.address, token=SUBMITTER_KEY), Client(b.address, token=SUBMITTER_KEY)]
        ids: list[str] = []
        try:
            # When jobs are submitted and read through both replicas while Redis is stopped
            # for 5 s in the middle (every call below raising would fail the test)
            stopped_at = restarted_at = 0.0
            for n in range(240):
                client = clients[n % 2]
                ids.append(client.submit("echo", {"n": n}).id)
                client.get(ids[n // 2])
                if n == 80:
                    redis.kill(signal.SIGKILL)
                    stopped_at = time.monotonic()
                if stopped_at and not restarted_at and time.monotonic() - stopped_at > 5:
                    redis.start()
                    restarted_at = time.monotonic()
                time.sleep(0.02)
            if not restarted_at:
                time.sleep(max(0.0, 5 - (time.monotonic() - stopped_at)))
                redis.start()

            # Then every job ran to success: nothing was lost
            wait_until(lambda: all_finished(clients[0], ids), timeout=90, what="all jobs")
            states = {clients[1].get(i).state for i in ids}
            assert states == {JobState.SUCCEEDED}
            # And both replicas noticed the outage (a metric and one log line each)
            for replica in (a, b):
                assert sum_errors(replica.http_port) > 0
                lines = [
                    line
                    for line in replica.proc.output().splitlines()
                    if "coordination unavailable" in line
                ]
                assert len(lines) >= 1
                # One line per outage, not one per call
                assert len(lines) <= 2, lines
                assert '"rpc failed"' not in replica.proc.output()
            # And once Redis is back each replica uses it again
            for replica in (a, b):
                wait_until(
                    lambda r=replica: (
                        clients[0].get(ids[0]) is not None
                        and cluster.metric("jq_redis_fallback", r.http_port) == 0
                    ),
                    timeout=30,
                    what="fallback to end",
                )
        finally:
            for client in clients:
                client.close()


def sum_errors(http_port: int) -> float:
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "jq_redis_errors_total":
                total += sample.value
    return total


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
