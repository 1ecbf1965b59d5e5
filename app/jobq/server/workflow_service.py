"""jobq.v1.WorkflowService: decode, call WorkflowService, encode."""

from __future__ import annotations

from collections.abc import AsyncIterator

from jobq.core.errors import InvalidArgument
from jobq.core.model import LeaseRef
from jobq.core.workflows import FailurePolicy, WorkflowRecord, parent_keys, workflow_state
from jobq.server import convert
from jobq.server.job_service import submit_context
from jobq.server.rpc_context import Context
from jobq.server.workflows import NodeRequest, WorkflowService
from jobq.v1 import workflow_service_pb2 as pb
from jobq.v1 import workflow_service_pb2_grpc

POLICY_OF_PB = {
    pb.FAILURE_POLICY_UNSPECIFIED: FailurePolicy.CANCEL,
    pb.FAILURE_POLICY_CANCEL: FailurePolicy.CANCEL,
    pb.FAILURE_POLICY_WAIT: FailurePolicy.WAIT,
}
PB_OF_POLICY = {
    FailurePolicy.CANCEL: pb.FAILURE_POLICY_CANCEL,
    FailurePolicy.WAIT: pb.FAILURE_POLICY_WAIT,
}
PB_OF_STATE = {
    "running": pb.WORKFLOW_STATE_RUNNING,
    "succeeded": pb.WORKFLOW_STATE_SUCCEEDED,
    "failed": pb.WORKFLOW_STATE_FAILED,
}


def nodes_from_pb(request: pb.SubmitWorkflowRequest) -> list[NodeRequest]:
    context = submit_context()
    return [
        NodeRequest(
            key=node.key,
            spec=convert.spec_from_pb(node.job, f"nodes[{i}].job", **context),
            depends_on=tuple(node.depends_on),
        )
        for i, node in enumerate(request.nodes)
    ]


def workflow_to_pb(record: WorkflowRecord) -> pb.Workflow:
    workflow = record.workflow
    parents = parent_keys(record)
    return pb.Workflow(
        id=workflow.id,
        name=workflow.name,
        tenant=workflow.tenant,
        on_failure=PB_OF_POLICY[workflow.on_failure],
        state=PB_OF_STATE[workflow_state([j.state for j in record.jobs])],
        create_time=convert.ts(workflow.created_at),
        nodes=[
            pb.WorkflowNode(
                key=job.workflow_key or "",
                job=convert.job_to_pb(job),
                depends_on=parents.get(job.id, []),
            )
            for job in record.jobs
        ],
    )


class WorkflowServicer(workflow_service_pb2_grpc.WorkflowServiceServicer):
    def __init__(self, workflows: WorkflowService) -> None:
        self._workflows = workflows

    async def SubmitWorkflow(
        self, request: pb.SubmitWorkflowRequest, context: Context
    ) -> pb.Workflow:
        if request.on_failure not in POLICY_OF_PB:
            raise InvalidArgument("on_failure", f"{request.on_failure} is not a failure policy")
        record = await self._workflows.submit(
            nodes_from_pb(request),
            name=request.name,
            tenant=request.tenant,
            on_failure=POLICY_OF_PB[request.on_failure],
        )
        return workflow_to_pb(record)

    async def GetWorkflow(self, request: pb.GetWorkflowRequest, context: Context) -> pb.Workflow:
        return workflow_to_pb(await self._workflows.get(request.id))

    async def WatchWorkflow(
        self, request: pb.WatchWorkflowRequest, context: Context
    ) -> AsyncIterator[pb.Workflow]:
        async for record in self._workflows.watch(request.id):
            yield workflow_to_pb(record)

    async def GetParentResults(
        self, request: pb.GetParentResultsRequest, context: Context
    ) -> pb.GetParentResultsResponse:
        results = await self._workflows.parent_results(
            request.worker_id, LeaseRef(request.job_id, request.attempt)
        )
        return pb.GetParentResultsResponse(
            results=[pb.ParentResult(key=key, result=result) for key, result in results]
        )

    async def CancelWorkflow(
        self, request: pb.CancelWorkflowRequest, context: Context
    ) -> pb.Workflow:
        return workflow_to_pb(await self._workflows.cancel(request.id, request.reason))
