"""jobq.v1.JobService: decode, call the service, encode."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from jobq.core.model import Job
from jobq.observability import tracing
from jobq.observability.context import correlation_id
from jobq.server import convert
from jobq.server.rpc_context import Context
from jobq.server.service import JobqService
from jobq.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc
from jobq.wire.states import STATE_TO_PB


def submit_context() -> dict[str, Any]:
    """The RPC's correlation id and trace context, for the jobs whose submitter set none of
    its own (spec_from_pb's keywords): read once per call, not once per job.

    The trace context is the Submit call's span, so the job's execution joins its trace.
    """
    return {"correlation_id": correlation_id.get(), "trace_context": tracing.inject()}


class JobServicer(job_service_pb2_grpc.JobServiceServicer):
    def __init__(self, service: JobqService) -> None:
        self._service = service

    async def Submit(
        self, request: job_service_pb2.SubmitRequest, context: Context
    ) -> job_service_pb2.SubmitResponse:
        spec = convert.spec_from_pb(request.job, "job", **submit_context())
        (result,) = await self._service.submit([spec], field="job")
        return job_service_pb2.SubmitResponse(
            job=convert.job_to_pb(result.job),
            created=result.created,
            warnings=await self._service.unserved([result.job]),
        )

    async def SubmitBatch(
        self, request: job_service_pb2.SubmitBatchRequest, context: Context
    ) -> job_service_pb2.SubmitBatchResponse:
        defaults = submit_context()
        specs = [
            convert.spec_from_pb(job, f"jobs[{i}]", **defaults)
            for i, job in enumerate(request.jobs)
        ]
        results = await self._service.submit(specs, field="jobs")
        warnings = await self._service.unserved([r.job for r in results])
        if request.lean:
            stamps = convert.Stamps()
            replies = [
                job_service_pb2.SubmitResponse(
                    job=convert.submitted_to_pb(r.job, sent, stamps)
                    if r.created
                    else convert.job_to_pb(r.job),
                    created=r.created,
                )
                for r, sent in zip(results, request.jobs, strict=True)
            ]
        else:
            replies = [
                job_service_pb2.SubmitResponse(job=convert.job_to_pb(r.job), created=r.created)
                for r in results
            ]
        return job_service_pb2.SubmitBatchResponse(results=replies, warnings=warnings)

    async def GetJob(self, request: job_service_pb2.GetJobRequest, context: Context) -> job_pb2.Job:
        return convert.job_to_pb(await self._service.get(request.id))

    async def ListJobs(
        self, request: job_service_pb2.ListJobsRequest, context: Context
    ) -> job_service_pb2.ListJobsResponse:
        page = await self._service.list_jobs(
            convert.filter_from_pb(request), request.page_size, request.page_token
        )
        return job_service_pb2.ListJobsResponse(
            jobs=[convert.job_to_pb(j) for j in page.jobs], next_page_token=page.next_after or ""
        )

    async def CancelJob(
        self, request: job_service_pb2.CancelJobRequest, context: Context
    ) -> job_pb2.Job:
        return convert.job_to_pb(await self._service.cancel(request.id, request.reason))

    async def WatchJob(
        self, request: job_service_pb2.WatchJobRequest, context: Context
    ) -> AsyncIterator[job_service_pb2.WatchJobResponse]:
        # The whole job once; then what changed, never the payload again: re-sending a 1 MB
        # job on each progress step multiplied into gigabytes for a few watchers.
        previous: Job | None = None
        async for job in self._service.watch(request.id):
            if previous is None:
                yield job_service_pb2.WatchJobResponse(job=convert.job_to_pb(job))
            else:
                yield job_service_pb2.WatchJobResponse(change=change_to_pb(previous, job))
            previous = job


def change_to_pb(previous: Job, job: Job) -> job_service_pb2.JobChange:
    """The changing fields of `job` as they are now; result and last_error when they changed."""
    fields: dict[str, Any] = {
        "state": STATE_TO_PB[job.state],
        "attempt": job.attempt,
        "progress": job.progress,
        "progress_message": job.progress_message,
        "cancel_requested": job.cancel_requested,
        "worker_id": job.worker_id or "",
        "lease_expires_at": convert.ts(job.lease_expires_at),
        "updated_at": convert.ts(job.updated_at),
        "started_at": convert.ts(job.started_at),
        "finished_at": convert.ts(job.finished_at),
    }
    if job.result != previous.result:
        fields["result"] = job.result or ""
    if job.last_error != previous.last_error:
        fields["last_error"] = job.last_error or ""
    return job_service_pb2.JobChange(**{k: v for k, v in fields.items() if v is not None})
