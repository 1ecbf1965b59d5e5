"""`submit_many` keeps several batches in flight and still answers as one call would."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import grpc
import pytest

from jobq.client import AsyncClient
from jobq.core.errors import InvalidArgument
from jobq.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc
from tests.auth_keys import OWNER_KEY
from tests.integration.inprocess import running_server


async def test_results_keep_the_order_of_the_jobs_with_batches_in_flight(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path) as server,
        AsyncClient(f"127.0.0.1:{server.grpc_port}", token=OWNER_KEY) as client,
    ):
        progress: list[int] = []
        results = await client.submit_many(
            ({"type": "echo", "payload": i} for i in range(1050)),
            chunk=100,
            in_flight=4,
            on_progress=progress.append,
        )
        assert [r.job.payload for r in results] == list(range(1050))
        assert sorted(progress) == [50] + [100] * 10
        (stats,) = await client.queue_stats("default")
        assert stats.by_state["queued"] == 1050


async def test_a_refused_batch_raises_its_own_error_not_a_group(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path) as server,
        AsyncClient(f"127.0.0.1:{server.grpc_port}", token=OWNER_KEY) as client,
    ):
        jobs = [{"type": "echo", "payload": i} for i in range(300)]
        jobs[250]["type"] = "not a task name!"
        with pytest.raises(InvalidArgument) as refused:
            await client.submit_many(jobs, chunk=100, in_flight=1)
        assert refused.value.field.startswith("jobs[50]")
        # One batch at a time: the two before it were taken, nothing after it was sent.
        (stats,) = await client.queue_stats("default")
        assert stats.by_state["queued"] == 200
        with pytest.raises(InvalidArgument, match="in_flight"):
            await client.submit_many(jobs, in_flight=0)


async def test_a_lean_reply_completed_from_the_request_is_the_job_as_stored(
    tmp_path: Path,
) -> None:
    # Given jobs that leave the server to decide different things: queue, payload, times,
    # attempts, correlation, expiry; and one whose idempotency key matches on a resubmit
    at = dt.datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC)
    trace = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    specs: list[dict[str, Any]] = [
        {"type": "echo"},
        {"type": "echo", "payload": {"a": [1, 2]}, "queue": "q1", "priority": 7},
        {"type": "echo", "delay": "90s", "ttl": "1h", "timeout": "5m", "max_attempts": 9},
        {"type": "echo", "run_at": at, "rate_key": "r", "concurrency_key": "c"},
        {"type": "echo", "idempotency_key": "k-1", "payload": "first"},
    ]
    async with (
        running_server(tmp_path) as server,
        AsyncClient(
            f"127.0.0.1:{server.grpc_port}", token=OWNER_KEY, correlation_id="corr-9"
        ) as client,
    ):
        results = await client.submit_many(specs)
        # Then each result is the job as the server stores it, field for field
        for result in results:
            assert result.created
            assert result.job == await client.get(result.job.id)
        assert results[0].job.payload is None and results[1].job.queue == "q1"
        assert results[0].job.correlation_id == "corr-9"
        # And a job a key matched comes whole, as first stored
        again = await client.submit_many(
            [{"type": "echo", "idempotency_key": "k-1", "payload": "first"}]
        )
        assert not again[0].created and again[0].job == results[4].job
        # And a job's own trace context, kept as sent, is left out of the lean reply
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}")
        try:
            sent = job_pb2.Job(type="echo", payload="1", trace_context=trace)
            reply = await job_service_pb2_grpc.JobServiceStub(channel).SubmitBatch(
                job_service_pb2.SubmitBatchRequest(jobs=[sent], lean=True),
                metadata=[("authorization", f"Bearer {OWNER_KEY}")],
            )
        finally:
            await channel.close()
        (lean,) = reply.results
        assert not lean.job.trace_context and not lean.job.payload and not lean.job.type
        stored = await client.get(lean.job.id)
        assert stored.trace_context == trace and stored.payload == 1
