"""A workflow survives a worker SIGKILL and a server restart (ADR 0016): real processes."""

from __future__ import annotations

import contextlib
import signal
from pathlib import Path

from jobq.client import Node
from jobq.core.states import JobState
from tests.e2e.conftest import Cluster, wait_until

SHORT_LEASES = {"JQ_DEFAULT_LEASE_TIMEOUT": "2s"}


def test_a_workflow_survives_a_worker_sigkill_and_a_server_restart(tmp_path: Path) -> None:
    """Given a chain whose first node runs when its worker is SIGKILLed and then the server
    too, when a server and a worker start again, then the node is leased again and the
    chain finishes, each node succeeding once."""
    cluster = Cluster(tmp_path)
    try:
        cluster.start_server(**SHORT_LEASES)
        worker = cluster.start_worker(name="doomed")
        with contextlib.closing(cluster.client()) as client:
            workflow = client.submit_workflow(
                [
                    Node("first", "slow_first", max_attempts=3),
                    Node("then", "echo", {"n": 1}, depends_on=["first"]),
                ]
            )
            first = workflow.node("first").id
            wait_until(lambda: client.get(first).state is JobState.RUNNING, what="first to run")
        worker.signal(signal.SIGKILL)
        worker.wait(10)
        server = cluster.procs[0]
        server.signal(signal.SIGKILL)
        server.wait(10)
        cluster.start_server(**SHORT_LEASES)
        cluster.start_worker(name="second")
        with contextlib.closing(cluster.client()) as client:
            done = client.wait_workflow(workflow.id)
        assert done.state == "succeeded"
        assert done.node("first").result == 2, "its second attempt, after the lease expired"
        assert done.node("then").attempt == 1
    finally:
        cluster.stop()
