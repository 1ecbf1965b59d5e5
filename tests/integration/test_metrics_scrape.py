"""Real scrapes: after some work, a jq-server's and a jq-worker's /metrics pass
`promtool check metrics` and export every metric of the contract (tests/ops/metric_contract.py)
with its declared type."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import subprocess
from pathlib import Path

import aiohttp
import pytest

from jobq.client import AsyncClient
from jobq.core.states import JobState
from jobq.observability.http import HttpSidePort, build_http_app
from jobq.observability.worker_metrics import WorkerMetrics
from jobq.server.app import ServerApp
from jobq.v1 import worker_service_pb2 as pb
from jobq.v1 import worker_service_pb2_grpc
from jobq.worker.task import PermanentError, task
from tests.auth_keys import OWNER_KEY
from tests.integration import authed
from tests.integration.inprocess import running_server, running_worker
from tests.ops.metric_contract import EXPORTED_BY, METRICS, SERVER_JOB, WORKER_JOB

# In the contract for the alerts and dashboards, but this in-process server produces no
# sample: the Redis ones need Redis (tests/integration/test_coord_redis.py scrapes them);
# a store error needs a failing store. Each must still be declared (HELP and TYPE).
# (jq-result-processor's scrape is checked in tests/integration/test_result_processor.py.)
# This server has no Kafka: the outbox gauges then carry no sample (cluster_gauges.py;
# with a broker they do: tests/infra/test_container_commands.py, the compose jq-server).
NO_SAMPLES_YET = frozenset(
    {
        "jq_redis_operation_duration_seconds",
        "jq_redis_errors_total",
        "jq_job_changes_received_total",
        "jq_status_cache_total",
        "jq_store_errors_total",
        "jq_outbox_backlog",
        "jq_outbox_oldest_age_seconds",
        # By queue, once a limited queue is leased (tests/integration/test_lease_limits.py).
        "jq_lease_throttled_total",
        "jq_cap_slots_in_use",
    }
)


@task("scrape.ok", queue="scrape")
async def succeeds(payload):
    return payload


@task("scrape.fail", queue="scrape")
async def fails(payload):
    raise PermanentError("no")


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        message = "promtool not found: run scripts/install-promtool.sh"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def check_with_promtool(text: str) -> None:
    result = subprocess.run(
        [promtool(), "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), (
        result.stdout + result.stderr
    )


def declared_types(text: str) -> dict[str, str]:
    """`# TYPE name type` lines: counters keep their _total here, as the contract does."""
    types = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
    return types


def sampled(text: str) -> set[str]:
    """Names with at least one sample, histograms by their base name."""
    names = set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name = line.split("{", 1)[0].split(" ", 1)[0]
            for suffix in ("_bucket", "_count", "_sum", "_created"):
                if name.endswith(suffix) and METRICS.get(name.removesuffix(suffix)) == "histogram":
                    name = name.removesuffix(suffix)
            names.add(name)
    return names


def assert_exports_contract(text: str, job: str) -> None:
    types = declared_types(text)
    have = sampled(text)
    for name, kind in METRICS.items():
        if EXPORTED_BY[name] != job:
            continue
        assert types.get(name) == kind, f"{job} /metrics: {name} is {types.get(name)}, not {kind}"
        if name not in NO_SAMPLES_YET:
            assert name in have, f"{job} /metrics: {name} has no sample after the work"


async def scrape(port: int) -> str:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        return await response.text()


async def exercise_server(server: ServerApp, client: AsyncClient) -> None:
    """Submit, lease, complete, fail (retried and dead-lettered), let a lease expire."""
    await client.create_queue("scrape-short", lease_timeout=dt.timedelta(milliseconds=200))
    for payload in range(3):
        await client.submit("echo", payload, queue="scrape")
    lost = await client.submit("echo", "lost", queue="scrape-short")
    async with authed.channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = worker_service_pb2_grpc.WorkerServiceStub(channel)
        worker = (
            await stub.RegisterWorker(
                pb.RegisterWorkerRequest(
                    hostname="scrape", queues=["scrape", "scrape-short"], capacity=10
                )
            )
        ).worker_id
        leased = await stub.LeaseJobs(
            pb.LeaseJobsRequest(worker_id=worker, queues=["scrape"], max_jobs=3)
        )
        ok, retried, dead = (pb.LeaseRef(job_id=j.id, attempt=j.attempt) for j in leased.jobs)
        await stub.ReportOutcomes(
            pb.ReportOutcomesRequest(
                worker_id=worker,
                outcomes=[
                    pb.Outcome(lease=ok, completed=pb.Outcome.Completed(result="1")),
                    pb.Outcome(lease=retried, failed=pb.Outcome.Failed(error="x", retryable=True)),
                    pb.Outcome(lease=dead, failed=pb.Outcome.Failed(error="x", retryable=False)),
                ],
            )
        )
        await stub.LeaseJobs(
            pb.LeaseJobsRequest(worker_id=worker, queues=["scrape-short"], max_jobs=1)
        )
    for _ in range(100):  # no heartbeat: the scheduler reaps the lease after 200 ms
        if (await client.get(lost.id)).state is not JobState.RUNNING:
            break
        await asyncio.sleep(0.05)
    await server.service.observe()  # the gauges read from the store, as the scheduler does


async def test_server_scrape_passes_promtool_and_exports_its_contract(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server:
        async with AsyncClient(f"127.0.0.1:{server.grpc_port}", token=OWNER_KEY) as client:
            await exercise_server(server, client)
        text = await scrape(server.http_port)
    check_with_promtool(text)
    assert_exports_contract(text, SERVER_JOB)


async def test_worker_scrape_passes_promtool_and_exports_its_contract(tmp_path: Path) -> None:
    metrics = WorkerMetrics()
    # What jq-worker serves on JQ_WORKER_HTTP_PORT, on port 0 here.
    side_port = HttpSidePort(build_http_app(metrics.registry, None), "127.0.0.1", 0)
    port = await side_port.start()
    try:
        async with (
            running_server(tmp_path) as server,
            AsyncClient(f"127.0.0.1:{server.grpc_port}", token=OWNER_KEY) as client,
        ):
            jobs = [
                await client.submit(name, {}, queue="scrape", max_attempts=1)
                for name in ("scrape.ok", "scrape.fail")
            ]
            async with running_worker(
                server, {t.name: t for t in (succeeds, fails)}, metrics=metrics
            ):
                finished = [await client.wait(job.id) for job in jobs]
                text = await scrape(port)
    finally:
        await side_port.stop()
    assert [j.state for j in finished] == [JobState.SUCCEEDED, JobState.DEAD]
    check_with_promtool(text)
    assert_exports_contract(text, WORKER_JOB)
