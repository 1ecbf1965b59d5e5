"""The asyncio SDK: submit and follow jobs, and the operator calls jq-ctl makes."""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
import datetime as dt
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

import grpc
from google.protobuf import field_mask_pb2

from jobq.client import _convert as cv
from jobq.client._convert import DurationLike, Job
from jobq.client._retry import RetryPolicy
from jobq.client._schedules import AsyncSchedules
from jobq.client._warnings import WarningLog
from jobq.client._workflows import Canvas, Node, Workflow, as_nodes, workflow_from_pb
from jobq.core.errors import InvalidArgument
from jobq.core.model import QueueConfig, QueueStats, WorkerInfo
from jobq.core.states import TERMINAL_STATES, JobState
from jobq.ids import new_id
from jobq.observability import tracing
from jobq.observability.context import CORRELATION_HEADER
from jobq.v1 import (
    admin_service_pb2 as admin_pb,
)
from jobq.v1 import (
    admin_service_pb2_grpc,
    job_service_pb2_grpc,
    queue_pb2,
    workflow_service_pb2_grpc,
)
from jobq.v1 import (
    job_service_pb2 as job_pb,
)
from jobq.v1 import (
    workflow_service_pb2 as workflow_pb,
)
from jobq.wire.channel import Tls, channel_options, open_channel
from jobq.wire.errors import from_rpc_error
from jobq.worker.task import Task

T = TypeVar("T")

log = logging.getLogger("jobq.client")

DEFAULT_ADDRESS = "127.0.0.1:50051"
SUBMIT_CHUNK = 500
# Batches in flight at once. More overlap the server's transactions and enqueue faster, but
# today a burst of them starves the heartbeats of workers holding many leases (issue 11:
# with 4 in flight and 1,000 leases of 3 s held, most leases expired), so one is the default
# and more is the caller's choice.
SUBMIT_IN_FLIGHT = 1


@dataclasses.dataclass(frozen=True, slots=True)
class JobPage:
    jobs: list[Job]
    next_page_token: str


@dataclasses.dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    """A stored API key as the server shows it: never its secret."""

    id: str
    tenant: str
    roles: list[str]
    queues: list[str]  # empty: every queue
    description: str
    created_at: dt.datetime | None
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None


def _key_from_pb(key: admin_pb.ApiKey) -> ApiKeyInfo:
    return ApiKeyInfo(
        id=key.id,
        tenant=key.tenant,
        roles=list(key.roles),
        queues=list(key.queues),
        description=key.description,
        created_at=cv.opt_dt(key, "create_time"),
        expires_at=cv.opt_dt(key, "expire_time"),
        revoked_at=cv.opt_dt(key, "revoke_time"),
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Submitted:
    job: Job
    created: bool  # False: an idempotency key matched an existing job
    # What the server noticed but accepted, e.g. that no live worker serves the task.
    warnings: tuple[str, ...] = ()


def default_address() -> str:
    """JQ_SERVER_ADDRESS, else 127.0.0.1:50051: where jq-ctl and jq-worker look too."""
    from jobq.config import ClientSettings, load  # settings are read when a client is built

    return load(ClientSettings).server_address or DEFAULT_ADDRESS


class AsyncClient:
    """`async with AsyncClient("host:50051") as client: await client.submit("echo", {...})`.

    Every failed call raises a jobq.errors exception (InvalidArgument, NotFound, ...).
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        token: str = "",
        timeout: float = 30.0,
        correlation_id: str = "",
        tls: Tls | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        """`address`: host:port of jq-server; None: JQ_SERVER_ADDRESS, else 127.0.0.1:50051.
        `token`: an API key (jq_...) or a JWT, sent as `authorization: Bearer`. `tls`: CA,
        client certificate; without it, plaintext to a loopback address and TLS otherwise.
        `retry`: how idempotent calls are retried on UNAVAILABLE (RetryPolicy(); NO_RETRY)."""
        address = address or default_address()
        self.address = address
        self._token = token
        self._timeout = timeout
        self._retry = retry or RetryPolicy()
        self._correlation_id = correlation_id
        # The server's submit warnings, each logged once a minute by this client (_warnings).
        self._warn = WarningLog()
        self._channel = open_channel(address, tls, channel_options())
        self._jobs = job_service_pb2_grpc.JobServiceStub(self._channel)
        self._admin = admin_service_pb2_grpc.AdminServiceStub(self._channel)
        self._workflows = workflow_service_pb2_grpc.WorkflowServiceStub(self._channel)
        self.schedules = AsyncSchedules(self._channel, self._call)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._channel.close(None)

    def _metadata(self) -> list[tuple[str, str]]:
        # The caller's current span (if any) becomes the parent of the server's span, and of
        # the execution of any job this call submits.
        metadata = [(CORRELATION_HEADER, self._correlation_id or new_id())]
        metadata.extend(tracing.inject().items())
        if self._token:
            metadata.append(("authorization", f"Bearer {self._token}"))
        return metadata

    async def _call(
        self, method: Callable[..., Awaitable[T]], request: Any, *, idempotent: bool = False
    ) -> T:
        attempts = self._retry.attempts if idempotent else 1
        for retry in range(attempts):
            try:
                return await method(request, timeout=self._timeout, metadata=self._metadata())
            except grpc.RpcError as exc:
                code = exc.code() if callable(getattr(exc, "code", None)) else None
                if code != grpc.StatusCode.UNAVAILABLE or retry + 1 >= attempts:
                    raise from_rpc_error(exc) from None
            pause = self._retry.pause(retry)
            log.debug("jobq: server unavailable, retrying in %.2fs", pause)
            await asyncio.sleep(pause)
        raise AssertionError("unreachable: the last attempt returns or raises")

    # --- jobs -------------------------------------------------------------------------

    async def submit(
        self,
        type: str | Task,
        payload: Any = None,
        *,
        queue: str = "",
        priority: int = 0,
        max_attempts: int = 0,
        delay: DurationLike | None = None,
        run_at: dt.datetime | None = None,
        timeout: DurationLike | None = None,  # noqa: ASYNC109 (the job's, not the call's)
        ttl: DurationLike | None = None,
        idempotency_key: str = "",
        tenant: str = "",
        rate_key: str = "",
        concurrency_key: str = "",
    ) -> Job:
        """Submit one job of a task name or an @task, with a JSON-serialisable payload.

        `delay` and `timeout` take "10m", seconds or a timedelta; `idempotency_key`: the same
        key in a queue returns the existing job (and makes the call safe to retry)."""
        submitted = await self.submit_ex(
            type,
            payload,
            queue=queue,
            priority=priority,
            max_attempts=max_attempts,
            delay=delay,
            run_at=run_at,
            timeout=timeout,
            ttl=ttl,
            idempotency_key=idempotency_key,
            tenant=tenant,
            rate_key=rate_key,
            concurrency_key=concurrency_key,
        )
        return submitted.job

    async def submit_ex(
        self,
        type: str | Task,
        payload: Any = None,
        *,
        queue: str = "",
        priority: int = 0,
        max_attempts: int = 0,
        delay: DurationLike | None = None,
        run_at: dt.datetime | None = None,
        timeout: DurationLike | None = None,  # noqa: ASYNC109 (the job's, not the call's)
        ttl: DurationLike | None = None,
        idempotency_key: str = "",
        tenant: str = "",
        rate_key: str = "",
        concurrency_key: str = "",
        payload_json: str | None = None,
    ) -> Submitted:
        """Like submit, and also says whether the job is new or matched an idempotency key,
        and what the server warned of. `payload_json`: the payload as JSON text already."""
        job = cv.job_request(
            type,
            payload,
            queue=queue,
            priority=priority,
            max_attempts=max_attempts,
            delay=delay,
            run_at=run_at,
            timeout=timeout,
            ttl=ttl,
            idempotency_key=idempotency_key,
            tenant=tenant,
            rate_key=rate_key,
            concurrency_key=concurrency_key,
            payload_json=payload_json,
        )
        request = job_pb.SubmitRequest(job=job)
        response = await self._call(self._jobs.Submit, request, idempotent=bool(idempotency_key))
        return Submitted(
            cv.job_from_pb(response.job), response.created, self._warn(response.warnings)
        )

    async def submit_many(
        self,
        jobs: Iterable[dict[str, Any]],
        *,
        chunk: int = SUBMIT_CHUNK,
        in_flight: int = SUBMIT_IN_FLIGHT,
        on_progress: Callable[[int], None] | None = None,
    ) -> list[Submitted]:
        """Submit in batches of `chunk`, up to `in_flight` batches at once; each dict takes
        submit's arguments ("type", "payload", "queue", ...). Results keep the order of `jobs`.

        Each batch is all or nothing. When one fails its error is raised and no further batch
        is sent, but batches already in flight may have been accepted: give jobs idempotency
        keys to make submitting them again safe."""
        if in_flight < 1:
            raise InvalidArgument("in_flight", "must be at least 1")
        sent: list[list[Submitted]] = []
        slots = asyncio.Semaphore(in_flight)

        async def send(index: int, batch: list[Any]) -> None:
            try:
                request = job_pb.SubmitBatchRequest(jobs=batch, lean=True)
                keyed = all(job.idempotency_key for job in batch)
                response = await self._call(self._jobs.SubmitBatch, request, idempotent=keyed)
            finally:
                slots.release()
            warnings = self._warn(response.warnings)
            times = cv.Times()
            sent[index] = [
                Submitted(
                    cv.submitted_from_pb(job, r.job, times)
                    if r.created
                    else cv.job_from_pb(r.job, times),
                    r.created,
                    warnings,
                )
                for job, r in zip(batch, response.results, strict=True)
            ]
            if on_progress:
                on_progress(len(batch))

        async def dispatch(group: asyncio.TaskGroup, batch: list[Any]) -> None:
            # Waits for a free slot; a failed batch cancels this wait, so nothing more is sent.
            await slots.acquire()
            sent.append([])
            group.create_task(send(len(sent) - 1, batch))

        try:
            async with asyncio.TaskGroup() as group:
                batch: list[Any] = []
                for spec in jobs:
                    options = dict(spec)
                    batch.append(
                        cv.job_request(
                            options.pop("type", ""), options.pop("payload", None), **options
                        )
                    )
                    if len(batch) >= chunk:
                        await dispatch(group, batch)
                        batch = []
                if batch:
                    await dispatch(group, batch)
        except ExceptionGroup as failed:  # the caller gets the error, as from submit()
            raise failed.exceptions[0] from None
        return [submitted for results in sent for submitted in results]

    async def get(self, job_id: str) -> Job:
        return cv.job_from_pb(
            await self._call(self._jobs.GetJob, job_pb.GetJobRequest(id=job_id), idempotent=True)
        )

    async def list(
        self,
        *,
        queue: str = "",
        states: Sequence[JobState | str] = (),
        type: str = "",
        tenant: str = "",
        page_size: int = 50,
        page_token: str = "",
    ) -> JobPage:
        request = job_pb.ListJobsRequest(
            queue=queue,
            states=[cv.STATE_TO_PB[JobState(s)] for s in states],
            type=type,
            tenant=tenant,
            page_size=page_size,
            page_token=page_token,
        )
        response = await self._call(self._jobs.ListJobs, request, idempotent=True)
        return JobPage([cv.job_from_pb(j) for j in response.jobs], response.next_page_token)

    async def cancel(self, job_id: str, reason: str = "") -> Job:
        request = job_pb.CancelJobRequest(id=job_id, reason=reason)
        return cv.job_from_pb(await self._call(self._jobs.CancelJob, request))

    async def watch(self, job_id: str) -> AsyncIterator[Job]:
        """The job now, then at each change of state or progress, until it finishes.

        The server sends the whole job once and then only what changed; each Job yielded
        here is the first one with the changes so far applied.
        """
        call = self._jobs.WatchJob(job_pb.WatchJobRequest(id=job_id), metadata=self._metadata())
        job: Job | None = None
        try:
            async for message in call:
                if message.HasField("job"):
                    job = cv.job_from_pb(message.job)
                elif message.HasField("change") and job is not None:
                    job = cv.apply_change(job, message.change)
                else:
                    continue  # a kind of update this client does not know yet
                yield job
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        finally:
            call.cancel()

    async def wait(self, job_id: str) -> Job:
        """Block until the job reaches a terminal state and return it."""
        last: Job | None = None
        async for job in self.watch(job_id):
            last = job
            if job.state in TERMINAL_STATES:
                return job
        assert last is not None
        return last

    # --- workflows ----------------------------------------------------------------------

    async def submit_workflow(
        self,
        nodes: Canvas | Sequence[Node],
        *,
        name: str = "",
        on_failure: str = "cancel",
        tenant: str = "",
    ) -> Workflow:
        """Submit a DAG in one call: `Node`s with `depends_on` keys, or a canvas (chain,
        group, chord). A node runs once every node it depends on has succeeded.
        `on_failure`: "cancel" (a dead node cancels its descendants) or "wait" (they wait
        for it to be replayed)."""
        if on_failure not in ("cancel", "wait"):
            raise InvalidArgument("on_failure", f"{on_failure!r} is not cancel or wait")
        request = workflow_pb.SubmitWorkflowRequest(
            name=name,
            tenant=tenant,
            on_failure=(
                workflow_pb.FAILURE_POLICY_WAIT
                if on_failure == "wait"
                else workflow_pb.FAILURE_POLICY_CANCEL
            ),
            nodes=[node.to_pb() for node in as_nodes(nodes)],
        )
        return workflow_from_pb(await self._call(self._workflows.SubmitWorkflow, request))

    async def get_workflow(self, workflow_id: str) -> Workflow:
        request = workflow_pb.GetWorkflowRequest(id=workflow_id)
        return workflow_from_pb(
            await self._call(self._workflows.GetWorkflow, request, idempotent=True)
        )

    async def cancel_workflow(self, workflow_id: str, reason: str = "") -> Workflow:
        request = workflow_pb.CancelWorkflowRequest(id=workflow_id, reason=reason)
        return workflow_from_pb(await self._call(self._workflows.CancelWorkflow, request))

    async def watch_workflow(self, workflow_id: str) -> AsyncIterator[Workflow]:
        """The workflow now, then each time one of its nodes changes state, until every
        node has finished."""
        call = self._workflows.WatchWorkflow(
            workflow_pb.WatchWorkflowRequest(id=workflow_id), metadata=self._metadata()
        )
        try:
            async for message in call:
                yield workflow_from_pb(message)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        finally:
            call.cancel()

    async def wait_workflow(self, workflow_id: str) -> Workflow:
        """Block until every node of the workflow has finished and return it."""
        last: Workflow | None = None
        async for workflow in self.watch_workflow(workflow_id):
            last = workflow
        assert last is not None
        return last

    # --- queues -------------------------------------------------------------------------

    async def create_queue(self, name: str, **settings: Any) -> QueueConfig:
        request = admin_pb.CreateQueueRequest(queue=_queue_message(name, settings))
        return cv.queue_from_pb(await self._call(self._admin.CreateQueue, request))

    async def update_queue(self, name: str, *, tenant: str = "", **changes: Any) -> QueueConfig:
        """`tenant`: whose queue (only a caller that sees every tenant names another)."""
        queue = _queue_message(name, changes)
        queue.tenant = tenant
        request = admin_pb.UpdateQueueRequest(
            queue=queue, update_mask=field_mask_pb2.FieldMask(paths=sorted(changes))
        )
        return cv.queue_from_pb(await self._call(self._admin.UpdateQueue, request))

    async def get_queue(self, name: str, tenant: str = "") -> QueueConfig:
        request = admin_pb.GetQueueRequest(name=name, tenant=tenant)
        return cv.queue_from_pb(await self._call(self._admin.GetQueue, request, idempotent=True))

    async def list_queues(self) -> builtins.list[QueueConfig]:
        response = await self._call(
            self._admin.ListQueues, admin_pb.ListQueuesRequest(), idempotent=True
        )
        return [cv.queue_from_pb(q) for q in response.queues]

    async def pause_queue(self, name: str, tenant: str = "") -> QueueConfig:
        request = admin_pb.PauseQueueRequest(name=name, tenant=tenant)
        return cv.queue_from_pb(await self._call(self._admin.PauseQueue, request, idempotent=True))

    async def resume_queue(self, name: str, tenant: str = "") -> QueueConfig:
        request = admin_pb.ResumeQueueRequest(name=name, tenant=tenant)
        return cv.queue_from_pb(await self._call(self._admin.ResumeQueue, request, idempotent=True))

    async def purge_queue(self, name: str, tenant: str = "") -> int:
        request = admin_pb.PurgeQueueRequest(name=name, tenant=tenant)
        return (await self._call(self._admin.PurgeQueue, request)).cancelled

    async def queue_stats(self, name: str = "", tenant: str = "") -> builtins.list[QueueStats]:
        """`tenant` empty: every tenant the caller sees."""
        request = admin_pb.GetQueueStatsRequest(name=name, tenant=tenant)
        response = await self._call(self._admin.GetQueueStats, request, idempotent=True)
        return [cv.queue_stats_from_pb(s) for s in response.stats]

    # --- workers, dead letters, cluster ---------------------------------------------------

    async def list_workers(self) -> builtins.list[WorkerInfo]:
        response = await self._call(
            self._admin.ListWorkers, admin_pb.ListWorkersRequest(), idempotent=True
        )
        return [cv.worker_from_pb(w) for w in response.workers]

    async def drain_worker(self, worker_id: str) -> WorkerInfo:
        request = admin_pb.DrainWorkerRequest(worker_id=worker_id)
        return cv.worker_from_pb(await self._call(self._admin.DrainWorker, request))

    async def list_dead(
        self, queue: str = "", *, page_size: int = 50, page_token: str = ""
    ) -> JobPage:
        request = admin_pb.ListDeadLettersRequest(
            queue=queue, page_size=page_size, page_token=page_token
        )
        response = await self._call(self._admin.ListDeadLetters, request, idempotent=True)
        return JobPage([cv.job_from_pb(j) for j in response.jobs], response.next_page_token)

    async def replay_dead(self, queue: str = "", ids: Sequence[str] = ()) -> int:
        request = admin_pb.ReplayDeadLettersRequest(
            selector=admin_pb.DeadLetterSelector(queue=queue, ids=list(ids))
        )
        return (await self._call(self._admin.ReplayDeadLetters, request)).replayed

    async def discard_dead(self, queue: str = "", ids: Sequence[str] = ()) -> int:
        request = admin_pb.DiscardDeadLettersRequest(
            selector=admin_pb.DeadLetterSelector(queue=queue, ids=list(ids))
        )
        return (await self._call(self._admin.DiscardDeadLetters, request)).discarded

    # --- API keys (role admin) ------------------------------------------------------------

    async def create_api_key(
        self,
        roles: Sequence[str],
        *,
        tenant: str = "",
        queues: Sequence[str] = (),
        description: str = "",
        expires_in: dt.timedelta | None = None,
    ) -> tuple[ApiKeyInfo, str]:
        """The new key and its whole text (jq_<id>_<secret>): the only time it is shown."""
        request = admin_pb.CreateApiKeyRequest(
            tenant=tenant, roles=list(roles), queues=list(queues), description=description
        )
        if expires_in is not None:
            request.expires_in.FromTimedelta(expires_in)
        response = await self._call(self._admin.CreateApiKey, request)
        return _key_from_pb(response.key), response.secret_key

    async def list_api_keys(self, tenant: str = "") -> builtins.list[ApiKeyInfo]:
        response = await self._call(
            self._admin.ListApiKeys, admin_pb.ListApiKeysRequest(tenant=tenant)
        )
        return [_key_from_pb(k) for k in response.keys]

    async def revoke_api_key(self, key_id: str) -> ApiKeyInfo:
        key = await self._call(self._admin.RevokeApiKey, admin_pb.RevokeApiKeyRequest(id=key_id))
        return _key_from_pb(key)

    async def cluster_stats(self) -> dict[str, Any]:
        response = await self._call(
            self._admin.GetClusterStats, admin_pb.GetClusterStatsRequest(), idempotent=True
        )
        return {
            "jobs_by_state": dict(response.jobs_by_state),
            "queues": response.queues,
            "active_workers": response.active_workers,
            "outbox_backlog": response.outbox_backlog,
        }


_QUEUE_DURATIONS = {"backoff_base", "backoff_max", "lease_timeout", "default_ttl", "retention"}


def _queue_message(name: str, settings: dict[str, Any]) -> queue_pb2.Queue:
    fields: dict[str, Any] = {"name": name}
    for key, value in settings.items():
        if value is None:
            continue
        fields[key] = cv.dur(value) if key in _QUEUE_DURATIONS else value
    return queue_pb2.Queue(**fields)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
