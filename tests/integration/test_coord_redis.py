"""The server on a real Redis: status cache, presence, in-flight counters, Redis down."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from jobq import NotFound
from jobq.client import AsyncClient
from jobq.core.model import WorkerState
from jobq.core.states import JobState
from jobq.server.app import ServerApp
from jobq.v1 import worker_service_pb2 as pb
from jobq.v1 import worker_service_pb2_grpc
from tests.auth_keys import OWNER_KEY, _key
from tests.harness.redis import cli, redis_server
from tests.integration import authed
from tests.integration.inprocess import running_server


def sample(server: ServerApp, name: str, **labels: str) -> float:
    value = server.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def store_gets(server: ServerApp) -> float:
    return sample(server, "jq_db_query_duration_seconds_count", operation="jobs.get")


@contextlib.asynccontextmanager
async def client_of(server: ServerApp) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(f"127.0.0.1:{server.grpc_port}", token=OWNER_KEY) as client:
        yield client


async def register(server: ServerApp, queues: list[str]) -> tuple[object, str]:
    channel = authed.channel(f"127.0.0.1:{server.grpc_port}")
    stub = worker_service_pb2_grpc.WorkerServiceStub(channel)
    reply = await stub.RegisterWorker(
        pb.RegisterWorkerRequest(hostname="t", queues=queues, capacity=10)
    )
    return channel, reply.worker_id


async def test_get_job_reads_through_the_cache_and_sees_each_change_at_once(
    tmp_path: Path, redis_server
) -> None:
    redis_server.flush()
    async with (
        running_server(tmp_path, redis_url=redis_server.url) as server,
        client_of(server) as client,
    ):
        job = await client.submit("echo", {"n": 1}, delay="1h")
        await client.get(job.id)  # a miss: read from the store, put in the cache
        before = store_gets(server)
        # Given the job is cached, When it is read again, Then the store is not asked
        for _ in range(5):
            assert (await client.get(job.id)).state is JobState.SCHEDULED
        assert store_gets(server) == before
        assert sample(server, "jq_status_cache_total", result="hit") >= 5
        # When it changes, Then the next read sees the change (the cache was invalidated)
        await client.cancel(job.id)
        assert (await client.get(job.id)).state is JobState.CANCELLED
        # And every Redis call was timed
        assert (
            sample(server, "jq_redis_operation_duration_seconds_count", operation="cache_get") >= 6
        )


async def test_another_tenant_never_reads_a_cached_job(tmp_path: Path, redis_server) -> None:
    # Given two tenants' submitters, and tenant a's job in the cache (shared by all tenants)
    key_a, key_b = _key(0xA1), _key(0xB1)
    keys = json.dumps(
        [
            {"key": key_a, "tenant": "a", "roles": ["submitter"]},
            {"key": key_b, "tenant": "b", "roles": ["submitter"]},
        ]
    )
    redis_server.flush()
    async with running_server(
        tmp_path, redis_url=redis_server.url, auth_bootstrap_keys=keys
    ) as server:
        address = f"127.0.0.1:{server.grpc_port}"
        async with AsyncClient(address, token=key_a) as mine:
            job = await mine.submit("echo", {}, delay="1h")
            await mine.get(job.id)
            assert (await mine.get(job.id)).id == job.id
        assert sample(server, "jq_status_cache_total", result="hit") >= 1
        # Then tenant b reading it gets NOT_FOUND, as from the store (ADR 0009)
        async with AsyncClient(address, token=key_b) as theirs:
            with pytest.raises(NotFound):
                await theirs.get(job.id)


async def test_in_flight_counters_follow_leases_per_queue_and_worker(
    tmp_path: Path, redis_server
) -> None:
    redis_server.flush()
    async with (
        running_server(tmp_path, redis_url=redis_server.url) as server,
        client_of(server) as client,
    ):
        await client.create_queue("counted", lease_timeout=dt.timedelta(seconds=2))
        for n in range(3):
            await client.submit("echo", n, queue="counted")
        channel, worker = await register(server, ["counted"])
        stub = worker_service_pb2_grpc.WorkerServiceStub(channel)
        leased = await stub.LeaseJobs(
            pb.LeaseJobsRequest(worker_id=worker, queues=["counted"], max_jobs=3)
        )
        await server.service.observe()
        assert sample(server, "jq_inflight_jobs", queue="counted") == 3
        # Heartbeats keep the leases, and the counters, past the first 2 s lease
        refs = [pb.LeaseRef(job_id=j.id, attempt=j.attempt) for j in leased.jobs]
        for _ in range(6):
            await asyncio.sleep(0.5)
            await stub.Heartbeat(pb.HeartbeatRequest(worker_id=worker, leases=refs))
        await server.service.observe()
        assert sample(server, "jq_inflight_jobs", queue="counted") == 3
        assert sample(server, "jq_worker_inflight_jobs", worker=worker) == 3
        await stub.ReportOutcomes(
            pb.ReportOutcomesRequest(
                worker_id=worker,
                outcomes=[
                    pb.Outcome(
                        lease=pb.LeaseRef(job_id=j.id, attempt=j.attempt),
                        completed=pb.Outcome.Completed(result="1"),
                    )
                    for j in leased.jobs
                ],
            )
        )
        await server.service.observe()
        assert sample(server, "jq_inflight_jobs", queue="counted") == 0
        assert sample(server, "jq_worker_inflight_jobs", worker=worker) == 0
        await channel.close()


async def test_presence_decides_liveness_and_the_database_answers_while_redis_is_down(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with redis_server() as redis:
        async with (
            running_server(tmp_path, redis_url=redis.url) as server,
            client_of(server) as client,
        ):
            channel, worker = await register(server, ["present"])
            job = await client.submit("echo", {}, queue="present", delay="1h")
            states = {w.id: w.state for w in await client.list_workers()}
            assert states[worker] is WorkerState.ACTIVE
            # Given the worker's presence is gone from Redis (its heartbeat row is fresh)
            cli(redis.port, "ZREM", "jq:{presence}", worker)
            # Then workers list shows it lost: presence decides
            states = {w.id: w.state for w in await client.list_workers()}
            assert states[worker] is WorkerState.LOST

            # When Redis stops
            redis.kill()
            caplog.set_level(logging.WARNING, logger="jobq.coord")
            # Then serving goes on: reads come from the store, liveness from the heartbeat row
            for _ in range(3):
                assert (await client.get(job.id)).state is JobState.SCHEDULED
            states = {w.id: w.state for w in await client.list_workers()}
            assert states[worker] is WorkerState.ACTIVE
            assert sample(server, "jq_redis_fallback") == 1
            assert sample(server, "jq_status_cache_total", result="bypass") >= 1
            unavailable = [r for r in caplog.records if "coordination unavailable" in r.message]
            assert len(unavailable) == 1, "one log line per outage, not one per call"

            # When Redis is back, the next call after the retry pause uses it again
            redis.start()
            for _ in range(100):
                await client.get(job.id)
                if sample(server, "jq_redis_fallback") == 0:
                    break
                await asyncio.sleep(0.1)
            assert sample(server, "jq_redis_fallback") == 0
            await channel.close()


async def test_a_replayed_dead_job_is_not_served_dead_from_the_cache(
    tmp_path: Path, redis_server
) -> None:
    redis_server.flush()
    ttl = dt.timedelta(milliseconds=300)
    async with (
        running_server(tmp_path, redis_url=redis_server.url, status_cache_ttl=ttl) as server,
        client_of(server) as client,
    ):
        await client.submit("echo", {}, queue="replayed")
        channel, worker = await register(server, ["replayed"])
        stub = worker_service_pb2_grpc.WorkerServiceStub(channel)
        (job,) = (
            await stub.LeaseJobs(
                pb.LeaseJobsRequest(worker_id=worker, queues=["replayed"], max_jobs=1)
            )
        ).jobs
        await stub.ReportOutcomes(
            pb.ReportOutcomesRequest(
                worker_id=worker,
                outcomes=[
                    pb.Outcome(
                        lease=pb.LeaseRef(job_id=job.id, attempt=job.attempt),
                        failed=pb.Outcome.Failed(error="x", retryable=False),
                    )
                ],
            )
        )
        # Given the dead job is cached (after the failure's invalidation has run out)
        await asyncio.sleep(0.5)
        hits = sample(server, "jq_status_cache_total", result="hit")
        assert (await client.get(job.id)).state is JobState.DEAD
        assert (await client.get(job.id)).state is JobState.DEAD
        assert sample(server, "jq_status_cache_total", result="hit") > hits
        # When it is replayed by id, Then the next read sees it queued again
        assert await client.replay_dead(ids=[job.id]) == 1
        assert (await client.get(job.id)).state is JobState.QUEUED
        await channel.close()
