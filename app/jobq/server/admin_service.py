"""jobq.v1.AdminService: decode, call the service, encode."""

from __future__ import annotations

from jobq.core.errors import InvalidArgument
from jobq.server import convert
from jobq.server.keys import ApiKeyRpcs, KeyService
from jobq.server.rpc_context import Context
from jobq.server.service import JobqService
from jobq.store.base import DeadLetterSelector
from jobq.v1 import admin_service_pb2 as pb
from jobq.v1 import admin_service_pb2_grpc, queue_pb2, worker_pb2

CREATE_FIELDS = ("name", *convert.QUEUE_SCALARS, *convert.QUEUE_DURATIONS)


def _selector(selector: pb.DeadLetterSelector) -> DeadLetterSelector:
    return DeadLetterSelector(queue=selector.queue or None, ids=tuple(selector.ids))


class AdminServicer(ApiKeyRpcs, admin_service_pb2_grpc.AdminServiceServicer):
    def __init__(self, service: JobqService, keys: KeyService) -> None:
        ApiKeyRpcs.__init__(self, keys)
        self._service = service

    async def CreateQueue(
        self, request: pb.CreateQueueRequest, context: Context
    ) -> queue_pb2.Queue:
        fields = convert.queue_fields_from_pb(
            request.queue, [f for f in CREATE_FIELDS if f != "name"]
        )
        if not request.queue.HasField("default_ttl"):
            fields.pop("default_ttl")
        fields["name"] = request.queue.name
        return convert.queue_to_pb(await self._service.create_queue(fields))

    async def UpdateQueue(
        self, request: pb.UpdateQueueRequest, context: Context
    ) -> queue_pb2.Queue:
        paths = list(request.update_mask.paths)
        if not paths:
            raise InvalidArgument("update_mask", "name the fields to change")
        changes = convert.queue_fields_from_pb(request.queue, paths)
        queue = await self._service.update_queue(request.queue.name, changes, request.queue.tenant)
        return convert.queue_to_pb(queue)

    async def GetQueue(self, request: pb.GetQueueRequest, context: Context) -> queue_pb2.Queue:
        return convert.queue_to_pb(await self._service.get_queue(request.name, request.tenant))

    async def ListQueues(
        self, request: pb.ListQueuesRequest, context: Context
    ) -> pb.ListQueuesResponse:
        queues = await self._service.list_queues()
        return pb.ListQueuesResponse(queues=[convert.queue_to_pb(q) for q in queues])

    async def PauseQueue(self, request: pb.PauseQueueRequest, context: Context) -> queue_pb2.Queue:
        queue = await self._service.update_queue(request.name, {"paused": True}, request.tenant)
        return convert.queue_to_pb(queue)

    async def ResumeQueue(
        self, request: pb.ResumeQueueRequest, context: Context
    ) -> queue_pb2.Queue:
        queue = await self._service.update_queue(request.name, {"paused": False}, request.tenant)
        return convert.queue_to_pb(queue)

    async def PurgeQueue(
        self, request: pb.PurgeQueueRequest, context: Context
    ) -> pb.PurgeQueueResponse:
        cancelled = await self._service.purge_queue(request.name, request.tenant)
        return pb.PurgeQueueResponse(cancelled=cancelled)

    async def GetQueueStats(
        self, request: pb.GetQueueStatsRequest, context: Context
    ) -> pb.GetQueueStatsResponse:
        stats = await self._service.queue_stats(request.name or None, request.tenant)
        return pb.GetQueueStatsResponse(stats=[convert.queue_stats_to_pb(s) for s in stats])

    async def ListWorkers(
        self, request: pb.ListWorkersRequest, context: Context
    ) -> pb.ListWorkersResponse:
        workers = await self._service.list_workers()
        return pb.ListWorkersResponse(workers=[convert.worker_to_pb(w) for w in workers])

    async def DrainWorker(
        self, request: pb.DrainWorkerRequest, context: Context
    ) -> worker_pb2.Worker:
        return convert.worker_to_pb(await self._service.drain_worker(request.worker_id))

    async def ListDeadLetters(
        self, request: pb.ListDeadLettersRequest, context: Context
    ) -> pb.ListDeadLettersResponse:
        page = await self._service.list_dead(request.queue, request.page_size, request.page_token)
        return pb.ListDeadLettersResponse(
            jobs=[convert.job_to_pb(j) for j in page.jobs], next_page_token=page.next_after or ""
        )

    async def ReplayDeadLetters(
        self, request: pb.ReplayDeadLettersRequest, context: Context
    ) -> pb.ReplayDeadLettersResponse:
        count = await self._service.replay_dead(_selector(request.selector))
        return pb.ReplayDeadLettersResponse(replayed=count)

    async def DiscardDeadLetters(
        self, request: pb.DiscardDeadLettersRequest, context: Context
    ) -> pb.DiscardDeadLettersResponse:
        count = await self._service.discard_dead(_selector(request.selector))
        return pb.DiscardDeadLettersResponse(discarded=count)

    async def GetClusterStats(
        self, request: pb.GetClusterStatsRequest, context: Context
    ) -> pb.ClusterStats:
        return pb.ClusterStats(**await self._service.cluster_stats())
