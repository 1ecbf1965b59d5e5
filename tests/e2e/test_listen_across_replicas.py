"""Several jq-server replicas on one PostgreSQL, the pool through PgBouncer.

Only the PostgreSQL backends run here: the embedded SQLite file has one server.
"""

from __future__ import annotations

import pytest

from jobq.client import Client
from jobq.core.states import JobState
from tests.auth_keys import SUBMITTER_KEY

from .conftest import Cluster, wait_until

pytestmark = pytest.mark.e2e

WAKEUPS = "jq_store_wakeups_total"


@pytest.mark.parametrize("database", ["postgres", "pgbouncer"], indirect=True)
def test_submit_on_one_replica_wakes_a_long_poll_on_another_through_listen(
    cluster: Cluster,
) -> None:
    # Given: replica A serves an idle worker long-polling on A (the default 5 s wait: a
    # longer one only makes the worker slower to stop), and A's LISTEN session is up (its
    # first wake-up is the catch-up look it makes on connecting).
    a = cluster.start_replica("replica-a")
    b = cluster.start_replica("replica-b")
    wait_until(lambda: cluster.metric(WAKEUPS, a.http_port) >= 1, what="A to LISTEN")
    cluster.start_worker(JQ_SERVER_ADDRESS=a.address, JQ_LEASE_WAIT="5s")
    before = cluster.metric(WAKEUPS, a.http_port)

    # When: a job is submitted through replica B, whose pooled connection may be PgBouncer's.
    with Client(b.address, token=SUBMITTER_KEY) as client:
        job = client.submit("echo", {"msg": "across replicas"})
        done = client.wait(job.id)

    # Then: the worker on A ran it, and A was woken by the NOTIFY of B's commit. That
    # wake-up is the behaviour under test, not how fast the job ran: without it A still
    # finds the job on its next periodic look. Pointing JQ_DATABASE_DIRECT_URL at PgBouncer
    # makes this fail: a LISTEN made through a transaction pooler never hears the NOTIFY.
    assert done.state is JobState.SUCCEEDED
    assert cluster.metric(WAKEUPS, a.http_port) > before
