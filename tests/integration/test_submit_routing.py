"""Submitting by task name: a job that names no queue goes to the queue a live worker
registered its type on (the worker's @task queue), on both stores, over real gRPC."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest

from jobq import AsyncClient, JobState
from jobq.server.app import ServerApp
from jobq.v1 import worker_pb2, worker_service_pb2, worker_service_pb2_grpc
from jobq.worker.task import task
from tests.auth_keys import SUBMITTER_KEY, WORKER_KEY
from tests.integration import authed
from tests.integration.backends import BACKENDS, database_url, running
from tests.integration.inprocess import running_worker

JQ_CTL = str(Path(sys.executable).parent / "jq-ctl")


@task("email.send", queue="emails")
async def send_email(payload: Any) -> str:
    return "sent"


@task("report.build", queue="reports")
async def build_report(payload: Any) -> str:
    return "built"


@pytest.fixture(params=BACKENDS)
async def served(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ServerApp]:
    async with running(database_url(request, request.param, tmp_path)) as app:
        yield app


async def test_a_submit_by_name_goes_to_the_queue_a_live_worker_registered(
    served: ServerApp,
) -> None:
    tasks = {t.name: t for t in (send_email, build_report)}
    address = f"127.0.0.1:{served.grpc_port}"
    async with AsyncClient(address, token=SUBMITTER_KEY) as client:
        async with running_worker(served, tasks):
            # Given a worker serving email.send on `emails`, when it is submitted by name...
            routed = await client.submit_ex("email.send", {"to": "a@b.c"})
            # ...then it goes to `emails`, where it runs; nothing is warned of.
            assert routed.job.queue == "emails"
            assert routed.warnings == ()
            assert (
                await asyncio.wait_for(client.wait(routed.job.id), 10)
            ).state is JobState.SUCCEEDED
            # A batch routes each job; a queue given is kept; an unknown type goes to
            # `default`, with the warning that nobody serves it there.
            batch = await client.submit_many(
                [
                    {"type": "report.build"},
                    {"type": "email.send", "queue": "bulk"},
                    {"type": "ecko"},
                ]
            )
            assert [s.job.queue for s in batch] == ["reports", "bulk", "default"]
            # jq-ctl submit goes the same way.
            line = await asyncio.to_thread(_ctl, address, "submit", "report.build", "{}", "--json")
            assert json.loads(line)["job"]["queue"] == "reports"
        # Once the worker has stopped, no live worker holds the route: `default`, warned of.
        stopped = await client.submit_ex("email.send", {})
        assert stopped.job.queue == "default"
        (warning,) = stopped.warnings
        assert "no live worker serves task 'email.send' on queue 'default'" in warning


async def test_a_registration_routing_to_a_queue_it_does_not_serve_is_refused(
    served: ServerApp,
) -> None:
    request = worker_service_pb2.RegisterWorkerRequest(
        hostname="h",
        queues=["emails"],
        capacity=1,
        task_types=["email.send"],
        task_queues=[worker_pb2.TaskQueue(type="email.send", queue="reports")],
    )
    async with authed.channel(f"127.0.0.1:{served.grpc_port}", WORKER_KEY) as channel:
        stub = worker_service_pb2_grpc.WorkerServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.RegisterWorker(request)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "task_queues[0].queue" in (refused.value.details() or "")
    now, lost_after = served.service.clock.now(), served.settings.default_lease_timeout
    assert await served.store.workers.all(now, lost_after) == []


def _ctl(address: str, *args: str) -> str:
    import subprocess

    done = subprocess.run(
        [JQ_CTL, "--server", address, "--token", SUBMITTER_KEY, *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout
