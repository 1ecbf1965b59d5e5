"""The worker's side of WorkerService: typed calls, errors mapped to jobq's tree."""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import grpc

from jobq.core.model import LeasedJob, LeaseRef, Outcome, OutcomeKind
from jobq.observability import tracing
from jobq.observability.context import CORRELATION_HEADER
from jobq.v1 import worker_pb2, worker_service_pb2_grpc, workflow_service_pb2_grpc
from jobq.v1 import worker_service_pb2 as pb
from jobq.v1 import workflow_service_pb2 as workflow_pb
from jobq.wire.channel import Tls, channel_options, open_channel
from jobq.wire.convert import dur, leased_from_pb
from jobq.wire.errors import from_rpc_error

T = TypeVar("T")

# gRPC backs off reconnecting up to 2 minutes, failing every call at once meanwhile; a
# worker whose leases last seconds must be back within a heartbeat of the server's return
# (ADR 0007).
WORKER_CHANNEL_OPTIONS = [
    *channel_options(),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


def _lease(ref: LeaseRef) -> pb.LeaseRef:
    return pb.LeaseRef(job_id=ref.job_id, attempt=ref.attempt)


def _outcome(outcome: Outcome) -> pb.Outcome:
    lease = _lease(outcome.lease)
    if outcome.kind is OutcomeKind.COMPLETED:
        return pb.Outcome(lease=lease, completed=pb.Outcome.Completed(result=outcome.result or ""))
    if outcome.kind is OutcomeKind.CANCELLED:
        return pb.Outcome(lease=lease, cancelled=pb.Outcome.Cancelled())
    failed = pb.Outcome.Failed(error=outcome.error or "", retryable=outcome.retryable)
    if outcome.retry_after is not None:
        failed.retry_after.CopyFrom(dur(outcome.retry_after))
    return pb.Outcome(lease=lease, failed=failed)


class WorkerConnection:
    def __init__(
        self, address: str, token: str = "", timeout: float = 30.0, tls: Tls | None = None
    ) -> None:
        self._channel = open_channel(address, tls, WORKER_CHANNEL_OPTIONS)
        self._stub = worker_service_pb2_grpc.WorkerServiceStub(self._channel)
        self._workflows = workflow_service_pb2_grpc.WorkflowServiceStub(self._channel)
        self._metadata = [("authorization", f"Bearer {token}")] if token else []
        self._timeout = timeout
        self.worker_id = ""

    async def close(self) -> None:
        await self._channel.close(None)

    async def _call(
        self,
        method: Callable[..., Awaitable[T]],
        request: Any,
        timeout: float | None = None,  # noqa: ASYNC109 - the gRPC deadline sent with the call
        correlation_id: str = "",
    ) -> T:
        metadata = list(self._metadata)
        if correlation_id:
            metadata.append((CORRELATION_HEADER, correlation_id))
        metadata.extend(tracing.inject().items())
        try:
            return await method(request, timeout=timeout or self._timeout, metadata=metadata)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None

    async def register(
        self,
        worker_id: str,
        queues: Sequence[str],
        capacity: int,
        task_types: Sequence[str],
        task_queues: Mapping[str, str] | None = None,
    ) -> dt.timedelta:
        """`task_queues`: the queue each task type is served on, where a submit of the type
        that names no queue is sent."""
        response = await self._call(
            self._stub.RegisterWorker,
            pb.RegisterWorkerRequest(
                worker_id=worker_id,
                hostname=socket.gethostname(),
                queues=list(queues),
                capacity=capacity,
                task_types=list(task_types),
                task_queues=[
                    worker_pb2.TaskQueue(type=t, queue=q)
                    for t, q in sorted((task_queues or {}).items())
                ],
            ),
        )
        self.worker_id = response.worker_id
        interval: dt.timedelta = response.heartbeat_interval.ToTimedelta()
        return interval

    async def lease(
        self, queues: Sequence[str], max_jobs: int, wait: dt.timedelta, task_types: Sequence[str]
    ) -> list[LeasedJob]:
        request = pb.LeaseJobsRequest(
            worker_id=self.worker_id,
            queues=list(queues),
            max_jobs=max_jobs,
            wait=dur(wait),
            task_types=list(task_types),
            lean=True,
        )
        response = await self._call(
            self._stub.LeaseJobs, request, timeout=wait.total_seconds() + self._timeout
        )
        return [leased_from_pb(j) for j in response.leased]

    async def heartbeat(
        self,
        leases: Sequence[LeaseRef],
        timeout: float | None = None,  # noqa: ASYNC109 - the gRPC deadline sent with the call
    ) -> pb.HeartbeatResponse:
        request = pb.HeartbeatRequest(
            worker_id=self.worker_id, leases=[_lease(ref) for ref in leases]
        )
        return await self._call(self._stub.Heartbeat, request, timeout=timeout)

    async def progress(self, lease: LeaseRef, fraction: float, message: str) -> bool:
        request = pb.ReportProgressRequest(
            worker_id=self.worker_id, lease=_lease(lease), progress=fraction, message=message
        )
        response = await self._call(self._stub.ReportProgress, request)
        return bool(response.cancel_requested)

    async def report(self, outcomes: Sequence[Outcome]) -> None:
        # The worker only needs to know the outcomes were taken: ids and states come back.
        request = pb.ReportOutcomesRequest(
            worker_id=self.worker_id, outcomes=[_outcome(o) for o in outcomes], lean=True
        )
        await self._call(self._stub.ReportOutcomes, request)

    async def release(self, leases: Sequence[LeaseRef]) -> list[tuple[LeaseRef, str]]:
        """Give leases back; the ones the server says were no longer held, with why."""
        request = pb.ReleaseJobsRequest(
            worker_id=self.worker_id, leases=[_lease(ref) for ref in leases]
        )
        response = await self._call(self._stub.ReleaseJobs, request)
        return [(LeaseRef(s.lease.job_id, s.lease.attempt), s.reason) for s in response.stale]

    async def parent_results(self, lease: LeaseRef) -> list[tuple[str, str]]:
        """(key, result JSON) of the succeeded parents of a workflow node this worker holds."""
        request = workflow_pb.GetParentResultsRequest(
            worker_id=self.worker_id, job_id=lease.job_id, attempt=lease.attempt
        )
        response = await self._call(self._workflows.GetParentResults, request)
        return [(r.key, r.result) for r in response.results]

    async def deregister(self) -> None:
        await self._call(
            self._stub.DeregisterWorker, pb.DeregisterWorkerRequest(worker_id=self.worker_id)
        )
