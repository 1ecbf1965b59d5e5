"""Bad input gets INVALID_ARGUMENT (or the fitting code) naming the field, and stores nothing."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from jobq.v1 import admin_service_pb2 as admin_pb
from jobq.v1 import admin_service_pb2_grpc, job_pb2, job_service_pb2_grpc, queue_pb2
from jobq.v1 import job_service_pb2 as pb


def job(**fields) -> job_pb2.Job:
    return job_pb2.Job(**({"type": "echo", "payload": "{}"} | fields))


BAD_JOBS = [
    ({"queue": "Bad Queue!"}, "job.queue"),
    ({"type": ""}, "job.type"),
    ({"delay": duration_pb2.Duration(seconds=-5)}, "job.delay"),
    ({"priority": 1000}, "job.priority"),
    ({"payload": "{not json"}, "job.payload"),
    ({"payload": '"' + "x" * 2000 + '"'}, "job.payload"),
    ({"id": "mine"}, "job.id"),
    ({"state": job_pb2.JOB_STATE_SUCCEEDED}, "job.state"),
    ({"attempt": 3}, "job.attempt"),
    ({"result": "{}"}, "job.result"),
    ({"worker_id": "w"}, "job.worker_id"),
    ({"max_attempts": -2}, "job.max_attempts"),
]


@pytest.mark.parametrize(("fields", "field"), BAD_JOBS)
async def test_bad_submit_is_invalid_argument_naming_the_field(channel, fields, field) -> None:
    stub = job_service_pb2_grpc.JobServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Submit(pb.SubmitRequest(job=job(**fields)))
    error = raised.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(field)
    status = rpc_status.from_call(error)
    bad = error_details_pb2.BadRequest()
    status.details[0].Unpack(bad)
    assert bad.field_violations[0].field == field
    listed = await stub.ListJobs(pb.ListJobsRequest())
    assert list(listed.jobs) == [], "a rejected submit must store nothing"


async def test_one_bad_job_rejects_the_whole_batch(channel) -> None:
    stub = job_service_pb2_grpc.JobServiceStub(channel)
    request = pb.SubmitBatchRequest(jobs=[job(), job(), job(priority=-500)])
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.SubmitBatch(request)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details().startswith("jobs[2].priority")
    assert list((await stub.ListJobs(pb.ListJobsRequest())).jobs) == []


async def test_empty_and_oversized_batches_are_refused(channel, server) -> None:
    stub = job_service_pb2_grpc.JobServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as empty:
        await stub.SubmitBatch(pb.SubmitBatchRequest())
    assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    too_many = [job() for _ in range(server.settings.max_batch + 1)]
    with pytest.raises(grpc.aio.AioRpcError) as big:
        await stub.SubmitBatch(pb.SubmitBatchRequest(jobs=too_many))
    assert big.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_idempotent_submit_over_the_api(channel) -> None:
    stub = job_service_pb2_grpc.JobServiceStub(channel)
    first = await stub.Submit(pb.SubmitRequest(job=job(idempotency_key="order-42")))
    again = await stub.Submit(pb.SubmitRequest(job=job(idempotency_key="order-42")))
    assert (first.created, again.created) == (True, False)
    assert again.job.id == first.job.id
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Submit(pb.SubmitRequest(job=job(idempotency_key="order-42", payload="[1]")))
    assert raised.value.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_unknown_job_is_not_found_and_finished_job_cannot_be_cancelled(channel) -> None:
    stub = job_service_pb2_grpc.JobServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stub.GetJob(pb.GetJobRequest(id="0190aaaa-0000-7000-8000-000000000000"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    submitted = await stub.Submit(pb.SubmitRequest(job=job()))
    await stub.CancelJob(pb.CancelJobRequest(id=submitted.job.id))
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await stub.CancelJob(pb.CancelJobRequest(id=submitted.job.id))
    assert again.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_queue_admin_errors(channel) -> None:
    stub = admin_service_pb2_grpc.AdminServiceStub(channel)
    await stub.CreateQueue(admin_pb.CreateQueueRequest(queue=queue_pb2.Queue(name="emails")))
    with pytest.raises(grpc.aio.AioRpcError) as dup:
        await stub.CreateQueue(admin_pb.CreateQueueRequest(queue=queue_pb2.Queue(name="emails")))
    assert dup.value.code() == grpc.StatusCode.ALREADY_EXISTS
    with pytest.raises(grpc.aio.AioRpcError) as bad_mask:
        await stub.UpdateQueue(
            admin_pb.UpdateQueueRequest(
                queue=queue_pb2.Queue(name="emails"),
                update_mask=field_mask_pb2.FieldMask(paths=["colour"]),
            )
        )
    assert bad_mask.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as bad_weight:
        await stub.UpdateQueue(
            admin_pb.UpdateQueueRequest(
                queue=queue_pb2.Queue(name="emails", weight=5000),
                update_mask=field_mask_pb2.FieldMask(paths=["weight"]),
            )
        )
    assert bad_weight.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    queue = await stub.GetQueue(admin_pb.GetQueueRequest(name="emails"))
    assert queue.weight == 1
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stub.PauseQueue(admin_pb.PauseQueueRequest(name="nope"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
