"""The worker protocol over gRPC: batched leases, long polls, fencing, progress, watch."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import grpc
import pytest
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from jobq.core.states import JobState
from jobq.v1 import job_pb2, worker_service_pb2_grpc
from jobq.v1 import worker_service_pb2 as pb


async def register(stub, worker_id: str = "", queues=("default",)) -> str:
    response = await stub.RegisterWorker(
        pb.RegisterWorkerRequest(
            worker_id=worker_id, hostname="test", queues=list(queues), capacity=10
        )
    )
    return response.worker_id


async def test_lease_hands_out_a_batch_in_one_call(channel, client) -> None:
    stub = worker_service_pb2_grpc.WorkerServiceStub(channel)
    await client.submit_many([{"type": "echo", "payload": i} for i in range(7)])
    worker = await register(stub)
    leased = await stub.LeaseJobs(pb.LeaseJobsRequest(worker_id=worker, max_jobs=5))
    assert len(leased.jobs) == 5
    assert all(j.state == job_pb2.JOB_STATE_RUNNING and j.attempt == 1 for j in leased.jobs)
    outcomes = [
        pb.Outcome(
            lease=pb.LeaseRef(job_id=j.id, attempt=j.attempt),
            completed=pb.Outcome.Completed(result=j.payload),
        )
        for j in leased.jobs
    ]
    reported = await stub.ReportOutcomes(
        pb.ReportOutcomesRequest(worker_id=worker, outcomes=outcomes)
    )
    assert [j.state for j in reported.jobs] == [job_pb2.JOB_STATE_SUCCEEDED] * 5
    assert [j.result for j in reported.jobs] == [j.payload for j in leased.jobs]


async def test_a_lean_lease_and_report_carry_what_a_worker_uses(channel, client) -> None:
    """Given jobs with a timeout, when a worker leases and reports with
    `lean`, then it gets each job's id, type, queue, payload, attempt, timeout and trace
    fields, and each outcome's job id and new state, in request order."""
    stub = worker_service_pb2_grpc.WorkerServiceStub(channel)
    submitted = await client.submit_many(
        [{"type": "echo", "payload": {"n": i}, "timeout": "90s"} for i in range(3)]
    )
    worker = await register(stub)
    leased = await stub.LeaseJobs(pb.LeaseJobsRequest(worker_id=worker, max_jobs=3, lean=True))
    assert not leased.jobs, "a lean answer carries no whole jobs"
    by_id = {s.job.id: s.job for s in submitted}
    assert sorted(j.id for j in leased.leased) == sorted(by_id)
    for j in leased.leased:
        job = by_id[j.id]
        assert (j.type, j.queue, j.attempt) == ("echo", "default", 1)
        assert json.loads(j.payload) == job.payload
        assert j.timeout_us == 90 * 10**6
        assert j.correlation_id == job.correlation_id != ""
    first, second, third = leased.leased
    outcomes = [
        pb.Outcome(
            lease=pb.LeaseRef(job_id=first.id, attempt=1),
            completed=pb.Outcome.Completed(result="1"),
        ),
        pb.Outcome(
            lease=pb.LeaseRef(job_id=second.id, attempt=1),
            failed=pb.Outcome.Failed(error="again", retryable=True),
        ),
        pb.Outcome(
            lease=pb.LeaseRef(job_id=third.id, attempt=1),
            failed=pb.Outcome.Failed(error="never", retryable=False),
        ),
    ]
    reported = await stub.ReportOutcomes(
        pb.ReportOutcomesRequest(worker_id=worker, outcomes=outcomes, lean=True)
    )
    assert not reported.jobs
    assert [(a.job_id, a.state) for a in reported.acks] == [
        (first.id, job_pb2.JOB_STATE_SUCCEEDED),
        (second.id, job_pb2.JOB_STATE_SCHEDULED),
        (third.id, job_pb2.JOB_STATE_DEAD),
    ]
    assert (await client.get(first.id)).result == 1


async def test_long_poll_lease_returns_a_job_submitted_while_it_waits(channel, client) -> None:
    stub = worker_service_pb2_grpc.WorkerServiceStub(channel)
    worker = await register(stub)
    waiting = asyncio.ensure_future(
        stub.LeaseJobs(
            pb.LeaseJobsRequest(
                worker_id=worker, max_jobs=1, wait=duration_pb2.Duration(seconds=20)
            )
        )
    )
    await asyncio.sleep(0.3)
    assert not waiting.done(), "with no work the lease call should be waiting"
    submitted = await client.submit("echo", {"n": 1})
    leased = await asyncio.wait_for(waiting, 15)
    assert [j.id for j in leased.jobs] == [submitted.id]


async def test_stale_attempt_is_failed_precondition_and_changes_nothing(channel, client) -> None:
    stub = worker_service_pb2_grpc.WorkerServiceStub(channel)
    job = await client.submit("echo", {})
    worker = await register(stub)
    (leased,) = (await stub.LeaseJobs(pb.LeaseJobsRequest(worker_id=worker, max_jobs=1))).jobs
    stale = pb.LeaseRef(job_id=leased.id, attempt=leased.attempt + 7)
    calls = [
        stub.CompleteJob(pb.CompleteJobRequest(worker_id=worker, lease=stale, result="1")),
        stub.FailJob(pb.FailJobRequest(worker_id=worker, lease=stale, error="x", retryable=False)),
        stub.ReportProgress(pb.ReportProgressRequest(worker_id=worker, lease=stale, progress=0.5)),
    ]
    before = await client.get(job.id)
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call
        assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        failure = error_details_pb2.PreconditionFailure()
        rpc_status.from_call(raised.value).details[0].Unpack(failure)
        assert [v.subject for v in failure.violations] == [leased.id]
    beat = await stub.Heartbeat(pb.HeartbeatRequest(worker_id=worker, leases=[stale]))
    assert [s.lease.job_id for s in beat.stale] == [leased.id], "named stale, not extended"
    assert await client.get(job.id) == before


async def test_another_workers_lease_is_rejected(channel, client) -> None:
    stub = worker_service_pb2_grpc.WorkerServiceStub(channel)
    await client.submit("echo", {})
    owner = await register(stub, "owner")
    thief = await register(stub, "thief")
    (leased,) = (await stub.LeaseJobs(pb.LeaseJobsRequest(worker_id=owner, max_jobs=1))).jobs
    ref = pb.LeaseRef(job_id=leased.id, attempt=leased.attempt)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.CompleteJob(pb.CompleteJobRequest(worker_id=thief, lease=ref, result="1"))
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_unregistered_worker_cannot_lease(channel) -> None:
    stub = worker_service_pb2_grpc.WorkerServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.LeaseJobs(pb.LeaseJobsRequest(worker_id="ghost", max_jobs=1))
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await stub.LeaseJobs(pb.LeaseJobsRequest(worker_id="", max_jobs=1))
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_watch_streams_progress_and_the_result(channel, client) -> None:
    stub = worker_service_pb2_grpc.WorkerServiceStub(channel)
    job = await client.submit("progress", {})
    worker = await register(stub)
    seen: list = []

    async def follow() -> None:
        async for update in client.watch(job.id):
            seen.append(update)

    watcher = asyncio.create_task(follow())
    (leased,) = (await stub.LeaseJobs(pb.LeaseJobsRequest(worker_id=worker, max_jobs=1))).jobs
    ref = pb.LeaseRef(job_id=leased.id, attempt=leased.attempt)
    for step in (0.25, 0.5):
        await stub.ReportProgress(
            pb.ReportProgressRequest(
                worker_id=worker, lease=ref, progress=step, message=f"at {step}"
            )
        )
        await asyncio.sleep(0.2)
    await stub.CompleteJob(pb.CompleteJobRequest(worker_id=worker, lease=ref, result='"done"'))
    await asyncio.wait_for(watcher, 10)
    assert [u.progress for u in seen if u.state is JobState.RUNNING][-2:] == [0.25, 0.5]
    assert seen[-1].state is JobState.SUCCEEDED
    assert seen[-1].result == "done"


async def test_cancel_reaches_the_worker_on_heartbeat(channel, client) -> None:
    stub = worker_service_pb2_grpc.WorkerServiceStub(channel)
    job = await client.submit("sleep", {"seconds": 30})
    worker = await register(stub)
    (leased,) = (await stub.LeaseJobs(pb.LeaseJobsRequest(worker_id=worker, max_jobs=1))).jobs
    ref = pb.LeaseRef(job_id=leased.id, attempt=leased.attempt)
    await client.cancel(job.id)
    beat = await stub.Heartbeat(pb.HeartbeatRequest(worker_id=worker, leases=[ref]))
    assert list(beat.cancel_job_ids) == [job.id]
    await stub.ReportOutcomes(
        pb.ReportOutcomesRequest(
            worker_id=worker, outcomes=[pb.Outcome(lease=ref, cancelled=pb.Outcome.Cancelled())]
        )
    )
    assert (await client.get(job.id)).state is JobState.CANCELLED


async def test_submitting_a_task_object_uses_its_name_queue_and_attempts(client) -> None:
    from jobq import task

    @task("email.send", queue="emails", max_attempts=7)
    async def send(payload):
        return payload

    job = await client.submit(send, {"to": "a@b.c"})
    assert (job.type, job.queue, job.max_attempts) == ("email.send", "emails", 7)
    other = await client.submit(send, {}, queue="urgent", max_attempts=2)
    assert (other.queue, other.max_attempts) == ("urgent", 2)


async def test_many_stale_leases_fit_in_one_status_a_client_can_read(channel, client) -> None:
    # Given 300 leases that were all completed, then reported again in one call
    stub = worker_service_pb2_grpc.WorkerServiceStub(channel)
    await client.submit_many([{"type": "echo", "payload": i} for i in range(300)])
    worker = await register(stub)
    leased = (await stub.LeaseJobs(pb.LeaseJobsRequest(worker_id=worker, max_jobs=300))).jobs
    refs = [pb.LeaseRef(job_id=j.id, attempt=j.attempt) for j in leased]
    outcomes = [pb.Outcome(lease=r, completed=pb.Outcome.Completed()) for r in refs]
    await stub.ReportOutcomes(pb.ReportOutcomesRequest(worker_id=worker, outcomes=outcomes))
    # When the worker reports all of them again
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.ReportOutcomes(pb.ReportOutcomesRequest(worker_id=worker, outcomes=outcomes))
    # Then it reads FAILED_PRECONDITION (not a transport error about oversized trailers),
    # with the count and a bounded list of the stale jobs it can drop before resending
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert raised.value.details().startswith("300 stale lease(s)")
    failure = error_details_pb2.PreconditionFailure()
    rpc_status.from_call(raised.value).details[0].Unpack(failure)
    assert 0 < len(failure.violations) <= 25
    assert {v.subject for v in failure.violations} <= {r.job_id for r in refs}


async def test_heartbeat_extends_the_live_leases_and_names_the_stale_ones(channel, client) -> None:
    # Given a worker holding 3 leases, one of them completed by an outcome report just now
    stub = worker_service_pb2_grpc.WorkerServiceStub(channel)
    await client.submit_many([{"type": "echo", "payload": i} for i in range(3)])
    worker = await register(stub)
    leased = (await stub.LeaseJobs(pb.LeaseJobsRequest(worker_id=worker, max_jobs=3))).jobs
    refs = [pb.LeaseRef(job_id=j.id, attempt=j.attempt) for j in leased]
    await stub.ReportOutcomes(
        pb.ReportOutcomesRequest(
            worker_id=worker, outcomes=[pb.Outcome(lease=refs[0], completed=pb.Outcome.Completed())]
        )
    )
    # When it heartbeats all three
    beat = await stub.Heartbeat(pb.HeartbeatRequest(worker_id=worker, leases=refs))
    # Then the call succeeds, naming the completed one as stale, and extends the other two
    assert [(s.lease.job_id, s.lease.attempt) for s in beat.stale] == [(refs[0].job_id, 1)]
    assert beat.stale[0].reason == "job is succeeded, not running"
    extended = beat.lease_expires_at.ToDatetime(tzinfo=dt.UTC)
    for ref in refs[1:]:
        assert (await client.get(ref.job_id)).lease_expires_at == extended


async def test_release_of_a_stale_lease_is_ok_and_names_it(channel, client) -> None:
    # Given a draining worker with one live lease and one whose attempt was completed
    stub = worker_service_pb2_grpc.WorkerServiceStub(channel)
    await client.submit_many([{"type": "echo", "payload": i} for i in range(2)])
    worker = await register(stub)
    live, done = (await stub.LeaseJobs(pb.LeaseJobsRequest(worker_id=worker, max_jobs=2))).jobs
    refs = [pb.LeaseRef(job_id=j.id, attempt=j.attempt) for j in (live, done)]
    await stub.CompleteJob(pb.CompleteJobRequest(worker_id=worker, lease=refs[1], result="1"))
    # When it releases both
    answer = await stub.ReleaseJobs(pb.ReleaseJobsRequest(worker_id=worker, leases=refs))
    # Then the live one goes back to the queue and the stale one is named, not an error
    assert answer.released == 1
    assert [s.lease.job_id for s in answer.stale] == [done.id]
    assert (await client.get(live.id)).state is JobState.QUEUED
    assert (await client.get(done.id)).state is JobState.SUCCEEDED
