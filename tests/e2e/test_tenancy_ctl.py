"""jq-ctl for an operator who sees every tenant (here: a server run without authentication):
`--tenant` picks whose queue of a name a command acts on, and the tables say whose each is."""

from __future__ import annotations

from jobq.core.states import JobState
from tests.e2e.conftest import Cluster, wait_until


def test_tenant_picks_whose_queue_jq_ctl_pauses_and_a_worker_serves_both(cluster: Cluster, client):
    cluster.start_server()
    for tenant in ("acme", "globex"):
        created = cluster.ctl("queues", "create", "emails", "--tenant", tenant)
        assert created.returncode == 0, created.stderr
    assert cluster.ctl("queues", "pause", "emails", "--tenant", "acme").returncode == 0
    held = client.submit("echo", {"n": 1}, queue="emails", tenant="acme")
    served = client.submit("echo", {"n": 2}, queue="emails", tenant="globex")

    stats = cluster.ctl_json("queues", "stats", "emails")
    assert [(s["tenant"], s["paused"]) for s in stats] == [("acme", True), ("globex", False)]
    only = cluster.ctl_json("queues", "stats", "--tenant", "globex")
    assert [s["tenant"] for s in only] == ["globex"]
    table = cluster.ctl("queues", "list")
    assert "TENANT" in table.stdout and "acme" in table.stdout and "globex" in table.stdout

    # An unauthenticated worker serves every tenant's queue of the names it is given.
    cluster.start_worker("--queues", "emails")
    assert client.wait(served.id).state is JobState.SUCCEEDED
    assert client.get(held.id).state is JobState.QUEUED, "acme's emails is paused"
    assert cluster.ctl("queues", "resume", "emails", "--tenant", "acme").returncode == 0
    wait_until(lambda: client.get(held.id).state is JobState.SUCCEEDED, what="acme's job")
    workers = cluster.ctl_json("workers", "list")
    assert [w["tenant"] for w in workers] == ["*"]
