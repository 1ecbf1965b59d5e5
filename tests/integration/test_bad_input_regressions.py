"""Issue 9, findings 2 and 3: each hostile input found on main gets a clear status, on both
stores, and changes nothing (before: INTERNAL, UNKNOWN, or a 30 MB value stored)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from jobq.core import bounds
from jobq.server.app import ServerApp
from jobq.v1 import admin_service_pb2 as admin_pb
from jobq.v1 import (
    admin_service_pb2_grpc,
    job_pb2,
    job_service_pb2_grpc,
    queue_pb2,
    worker_service_pb2_grpc,
)
from jobq.v1 import job_service_pb2 as pb
from jobq.v1 import worker_service_pb2 as wpb
from tests.integration import authed
from tests.integration.backends import BACKENDS, database_url, fingerprinter, running

LEASE_WAIT = duration_pb2.Duration(seconds=0)


class Api:
    def __init__(self, app: ServerApp, channel: grpc.aio.Channel, fingerprint: Any) -> None:
        self.app = app
        self.jobs = job_service_pb2_grpc.JobServiceStub(channel)
        self.workers = worker_service_pb2_grpc.WorkerServiceStub(channel)
        self.admin = admin_service_pb2_grpc.AdminServiceStub(channel)
        self.channel = channel
        self.fingerprint = fingerprint

    async def refused(self, call: Any, request: Any, code: grpc.StatusCode, field: str) -> str:
        """Make the call; assert it fails with `code` naming `field`, and changed no row."""
        before = self.fingerprint()
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call(request)
        error = raised.value
        assert error.code() == code, error.details()
        if code is grpc.StatusCode.INVALID_ARGUMENT:
            status = rpc_status.from_call(error)
            assert status is not None, error.details()
            bad = error_details_pb2.BadRequest()
            status.details[0].Unpack(bad)
            assert bad.field_violations[0].field == field, error.details()
        assert self.fingerprint() == before, "a refused request must change nothing"
        return str(error.details())


@pytest.fixture(params=BACKENDS)
async def api(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Api]:
    url = database_url(request, request.param, tmp_path)
    async with running(url, max_payload_bytes=100_000) as app:
        fingerprint, close = fingerprinter(url)
        try:
            async with authed.channel(
                f"127.0.0.1:{app.grpc_port}",
                options=[("grpc.max_send_message_length", 64 << 20)],
            ) as channel:
                yield Api(app, channel, fingerprint)
        finally:
            close()


def job(**fields: Any) -> job_pb2.Job:
    return job_pb2.Job(**({"type": "echo", "payload": "{}"} | fields))


async def leased(api: Api) -> tuple[str, wpb.LeaseRef]:
    """A registered worker holding a lease on a fresh job."""
    await api.jobs.Submit(pb.SubmitRequest(job=job()))
    worker = await api.workers.RegisterWorker(
        wpb.RegisterWorkerRequest(hostname="h", queues=["default"], capacity=1)
    )
    got = await api.workers.LeaseJobs(
        wpb.LeaseJobsRequest(worker_id=worker.worker_id, max_jobs=1, wait=LEASE_WAIT)
    )
    (one,) = got.jobs
    return worker.worker_id, wpb.LeaseRef(job_id=one.id, attempt=one.attempt)


NUL_SUBMITS = [
    ({"correlation_id": "a\x00b"}, "job.correlation_id"),
    ({"idempotency_key": "k\x00"}, "job.idempotency_key"),
    ({"trace_context": {"traceparent": "\x00"}}, "job.trace_context['traceparent']"),
]


@pytest.mark.parametrize(("fields", "field"), NUL_SUBMITS)
async def test_a_nul_in_a_string_is_invalid_argument_not_internal(api, fields, field) -> None:
    await api.refused(
        api.jobs.Submit,
        pb.SubmitRequest(job=job(**fields)),
        grpc.StatusCode.INVALID_ARGUMENT,
        field,
    )


async def test_a_nul_in_a_worker_hostname_or_cancel_reason_is_refused(api) -> None:
    await api.refused(
        api.workers.RegisterWorker,
        wpb.RegisterWorkerRequest(hostname="h\x00", queues=["default"], capacity=1),
        grpc.StatusCode.INVALID_ARGUMENT,
        "hostname",
    )
    submitted = await api.jobs.Submit(pb.SubmitRequest(job=job()))
    await api.refused(
        api.jobs.CancelJob,
        pb.CancelJobRequest(id=submitted.job.id, reason="r\x00"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "reason",
    )


async def test_a_failure_error_with_nul_and_30_mb_is_kept_sanitised(api) -> None:
    """The outcome is never lost: the error text is escaped and cut, the attempt recorded."""
    worker_id, lease = await leased(api)
    failed = await api.workers.FailJob(
        wpb.FailJobRequest(
            worker_id=worker_id, lease=lease, error="boom\x00" + "x" * (30 << 20), retryable=False
        )
    )
    assert failed.state == job_pb2.JOB_STATE_DEAD
    assert failed.last_error.startswith("boom\\u0000xxx")
    assert len(failed.last_error.encode()) <= api.app.settings.max_error_bytes


@pytest.mark.parametrize(
    ("stamp", "field"),
    [
        (timestamp_pb2.Timestamp(seconds=bounds.MAX_TIMESTAMP_SECONDS + 1), "job.run_at"),
        (timestamp_pb2.Timestamp(seconds=bounds.MIN_TIMESTAMP_SECONDS - 1), "job.run_at"),
        (timestamp_pb2.Timestamp(seconds=0, nanos=-1), "job.run_at"),
    ],
)
async def test_an_out_of_range_timestamp_is_invalid_argument(api, stamp, field) -> None:
    await api.refused(
        api.jobs.Submit,
        pb.SubmitRequest(job=job(run_at=stamp)),
        grpc.StatusCode.INVALID_ARGUMENT,
        field,
    )


async def test_out_of_range_list_filters_are_invalid_argument(api) -> None:
    await api.refused(
        api.jobs.ListJobs,
        pb.ListJobsRequest(created_after=timestamp_pb2.Timestamp(seconds=2**62)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "created_after",
    )
    await api.refused(
        api.jobs.ListJobs,
        pb.ListJobsRequest(created_before=timestamp_pb2.Timestamp(nanos=1_000_000_000)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "created_before",
    )


async def test_an_overflowing_duration_is_invalid_argument(api) -> None:
    huge = duration_pb2.Duration(seconds=10**15)
    for name in ("delay", "ttl", "timeout"):
        await api.refused(
            api.jobs.Submit,
            pb.SubmitRequest(job=job(**{name: huge})),
            grpc.StatusCode.INVALID_ARGUMENT,
            f"job.{name}",
        )
    late = timestamp_pb2.Timestamp(seconds=bounds.MAX_TIMESTAMP_SECONDS - 3600)
    await api.refused(
        api.jobs.Submit,
        pb.SubmitRequest(job=job(run_at=late, ttl=duration_pb2.Duration(seconds=86400))),
        grpc.StatusCode.INVALID_ARGUMENT,
        "job.ttl",
    )
    worker_id, lease = await leased(api)
    await api.refused(
        api.workers.FailJob,
        wpb.FailJobRequest(worker_id=worker_id, lease=lease, error="e", retry_after=huge),
        grpc.StatusCode.INVALID_ARGUMENT,
        "retry_after",
    )


@pytest.mark.parametrize("name", ["lease_timeout", "backoff_base", "retention", "default_ttl"])
async def test_a_huge_queue_duration_is_refused_before_it_is_stored(api, name) -> None:
    huge = duration_pb2.Duration(seconds=10**11)
    await api.refused(
        api.admin.CreateQueue,
        admin_pb.CreateQueueRequest(queue=queue_pb2.Queue(name="q", **{name: huge})),
        grpc.StatusCode.INVALID_ARGUMENT,
        f"queue.{name}",
    )
    await api.admin.CreateQueue(admin_pb.CreateQueueRequest(queue=queue_pb2.Queue(name="q")))
    await api.refused(
        api.admin.UpdateQueue,
        admin_pb.UpdateQueueRequest(
            queue=queue_pb2.Queue(name="q", **{name: huge}),
            update_mask=field_mask_pb2.FieldMask(paths=[name]),
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        f"queue.{name}",
    )


async def test_deep_json_is_invalid_argument_naming_the_field(api) -> None:
    deep = "[" * 1000 + "]" * 1000
    await api.refused(
        api.jobs.Submit,
        pb.SubmitRequest(job=job(payload=deep)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "job.payload",
    )
    worker_id, lease = await leased(api)
    await api.refused(
        api.workers.ReportOutcomes,
        wpb.ReportOutcomesRequest(
            worker_id=worker_id,
            outcomes=[wpb.Outcome(lease=lease, completed=wpb.Outcome.Completed(result=deep))],
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "outcomes[0].completed.result",
    )


@pytest.mark.parametrize("form", ["urn:uuid:{}", "{{{}}}", "{}\n", "UPPER"])
async def test_a_non_canonical_page_token_is_invalid_argument(api, form) -> None:
    submitted = await api.jobs.Submit(pb.SubmitRequest(job=job()))
    job_id = submitted.job.id
    token = job_id.upper() if form == "UPPER" else form.format(job_id)
    await api.refused(
        api.jobs.ListJobs,
        pb.ListJobsRequest(page_token=token),
        grpc.StatusCode.INVALID_ARGUMENT,
        "page_token",
    )
    await api.refused(
        api.admin.ListDeadLetters,
        admin_pb.ListDeadLettersRequest(page_token=token),
        grpc.StatusCode.INVALID_ARGUMENT,
        "page_token",
    )


async def test_ids_that_are_not_ids_are_not_found_or_invalid_on_both_stores(api) -> None:
    submitted = await api.jobs.Submit(pb.SubmitRequest(job=job()))
    for bogus in (f"urn:uuid:{submitted.job.id}", "{" + submitted.job.id + "}", "nope"):
        await api.refused(
            api.jobs.GetJob, pb.GetJobRequest(id=bogus), grpc.StatusCode.NOT_FOUND, "id"
        )
        await api.refused(
            api.jobs.CancelJob, pb.CancelJobRequest(id=bogus), grpc.StatusCode.NOT_FOUND, "id"
        )
        await api.refused(
            api.admin.ReplayDeadLetters,
            admin_pb.ReplayDeadLettersRequest(
                selector=admin_pb.DeadLetterSelector(ids=[submitted.job.id, bogus])
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "selector.ids[1]",
        )


def _raw(api: Api, method: str) -> Any:
    return api.channel.unary_unary(
        method, request_serializer=lambda b: b, response_deserializer=lambda b: b
    )


@pytest.mark.parametrize(
    ("method", "body"),
    [
        ("/jobq.v1.JobService/GetJob", b"\x0a\x02\xff\xfe"),  # id: invalid UTF-8
        ("/jobq.v1.JobService/Submit", b"\x0a\x04\x1a\x02\xc3\x28"),  # job.type
        ("/jobq.v1.WorkerService/RegisterWorker", b"\x12\x01\x80"),  # hostname
        ("/jobq.v1.AdminService/GetQueue", b"\x0a\x09ab"),  # truncated
        ("/jobq.v1.JobService/ListJobs", b"\xff" * 12),  # not protobuf at all
    ],
)
async def test_invalid_utf8_or_a_malformed_body_is_invalid_argument(api, method, body) -> None:
    details = await api.refused(
        _raw(api, method), body, grpc.StatusCode.INVALID_ARGUMENT, "request"
    )
    assert "not a valid message" in details


async def test_a_30_mb_correlation_id_is_refused_and_not_stored(api) -> None:
    await api.refused(
        api.jobs.Submit,
        pb.SubmitRequest(job=job(correlation_id="c" * (30 << 20))),
        grpc.StatusCode.INVALID_ARGUMENT,
        "job.correlation_id",
    )


async def test_100000_queue_names_are_refused_before_any_store_work(api) -> None:
    await api.refused(
        api.workers.RegisterWorker,
        wpb.RegisterWorkerRequest(
            hostname="h", queues=[f"q{i}" for i in range(100_000)], capacity=1
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "queues",
    )


async def test_a_request_over_the_receive_limit_is_resource_exhausted(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = database_url(request, "sqlite", tmp_path)
    async with running(url, max_payload_bytes=1000, max_batch=10) as app:
        limit = app.settings.receive_limit()
        assert limit == 10 * (16384 + 32768)  # a full batch of error texts and their fields
        fingerprint, close = fingerprinter(url)
        async with authed.channel(f"127.0.0.1:{app.grpc_port}") as channel:
            api = Api(app, channel, fingerprint)
            await api.refused(
                api.jobs.Submit,
                pb.SubmitRequest(job=job(correlation_id="c" * limit)),
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "",
            )
            # The server is still there for the next caller.
            assert (await api.jobs.Submit(pb.SubmitRequest(job=job()))).created
        close()
