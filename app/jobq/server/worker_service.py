"""jobq.v1.WorkerService: decode, call the service, encode."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from jobq.core.model import Outcome, OutcomeKind, StaleLeaseRef
from jobq.server import convert
from jobq.server.rpc_context import Context
from jobq.server.service import JobqService
from jobq.v1 import job_pb2, worker_service_pb2_grpc
from jobq.v1 import worker_service_pb2 as pb

DEFAULT_WAIT = dt.timedelta(0)


def _stale_to_pb(stale: Sequence[StaleLeaseRef]) -> list[pb.StaleLease]:
    return [
        pb.StaleLease(
            lease=pb.LeaseRef(job_id=s.lease.job_id, attempt=s.lease.attempt), reason=s.reason
        )
        for s in stale
    ]


class WorkerServicer(worker_service_pb2_grpc.WorkerServiceServicer):
    def __init__(self, service: JobqService) -> None:
        self._service = service

    async def RegisterWorker(
        self, request: pb.RegisterWorkerRequest, context: Context
    ) -> pb.RegisterWorkerResponse:
        worker, interval = await self._service.register_worker(
            request.worker_id,
            request.hostname,
            list(request.queues),
            request.capacity,
            list(request.task_types),
            [(r.type, r.queue) for r in request.task_queues],
        )
        return pb.RegisterWorkerResponse(
            worker_id=worker.id, heartbeat_interval=convert.dur(interval)
        )

    async def Heartbeat(
        self, request: pb.HeartbeatRequest, context: Context
    ) -> pb.HeartbeatResponse:
        leases = [
            convert.lease_from_pb(ref, f"leases[{i}]") for i, ref in enumerate(request.leases)
        ]
        result = await self._service.heartbeat(request.worker_id, leases)
        return pb.HeartbeatResponse(
            cancel_job_ids=list(result.cancel_job_ids),
            drain=result.drain,
            lease_expires_at=convert.ts(result.lease_expires_at),
            stale=_stale_to_pb(result.stale),
        )

    async def LeaseJobs(
        self, request: pb.LeaseJobsRequest, context: Context
    ) -> pb.LeaseJobsResponse:
        wait = convert.from_dur(request.wait, "wait") if request.HasField("wait") else DEFAULT_WAIT
        remaining = context.time_remaining()
        if remaining is not None:
            # Answer before the client's deadline, so a lease is never granted to a caller
            # that has already given up.
            wait = min(wait, dt.timedelta(seconds=max(0.0, remaining - 0.5)))
        args = (
            request.worker_id,
            list(request.queues),
            request.max_jobs or 1,
            wait,
            list(request.task_types),
        )
        if request.lean:
            leased = await self._service.lease(*args, lean=True)
            return pb.LeaseJobsResponse(leased=[convert.leased_to_pb(j) for j in leased])
        jobs = await self._service.lease(*args)
        return pb.LeaseJobsResponse(jobs=[convert.job_to_pb(j) for j in jobs])

    async def ReportProgress(
        self, request: pb.ReportProgressRequest, context: Context
    ) -> pb.ReportProgressResponse:
        job = await self._service.report_progress(
            request.worker_id,
            convert.lease_from_pb(request.lease),
            request.progress,
            request.message,
        )
        return pb.ReportProgressResponse(cancel_requested=job.cancel_requested)

    async def CompleteJob(self, request: pb.CompleteJobRequest, context: Context) -> job_pb2.Job:
        outcome = Outcome(
            convert.lease_from_pb(request.lease),
            OutcomeKind.COMPLETED,
            result=request.result or "null",
        )
        (job,) = await self._service.report(request.worker_id, [outcome])
        return convert.job_to_pb(job)

    async def FailJob(self, request: pb.FailJobRequest, context: Context) -> job_pb2.Job:
        outcome = Outcome(
            convert.lease_from_pb(request.lease),
            OutcomeKind.FAILED,
            error=request.error,
            retryable=request.retryable,
            retry_after=(
                convert.from_dur(request.retry_after, "retry_after")
                if request.HasField("retry_after")
                else None
            ),
        )
        (job,) = await self._service.report(request.worker_id, [outcome])
        return convert.job_to_pb(job)

    async def ReportOutcomes(
        self, request: pb.ReportOutcomesRequest, context: Context
    ) -> pb.ReportOutcomesResponse:
        outcomes = [
            convert.outcome_from_pb(o, f"outcomes[{i}]") for i, o in enumerate(request.outcomes)
        ]
        if request.lean:
            ended = await self._service.report(request.worker_id, outcomes, lean=True)
            return pb.ReportOutcomesResponse(acks=[convert.ack_to_pb(e) for e in ended])
        jobs = await self._service.report(request.worker_id, outcomes)
        return pb.ReportOutcomesResponse(jobs=[convert.job_to_pb(j) for j in jobs])

    async def ReleaseJobs(
        self, request: pb.ReleaseJobsRequest, context: Context
    ) -> pb.ReleaseJobsResponse:
        leases = [
            convert.lease_from_pb(ref, f"leases[{i}]") for i, ref in enumerate(request.leases)
        ]
        result = await self._service.release(request.worker_id, leases)
        return pb.ReleaseJobsResponse(released=result.released, stale=_stale_to_pb(result.stale))

    async def DeregisterWorker(
        self, request: pb.DeregisterWorkerRequest, context: Context
    ) -> pb.DeregisterWorkerResponse:
        await self._service.deregister(request.worker_id)
        return pb.DeregisterWorkerResponse()
