"""Two tenants sharing one server, over real gRPC, on both stores: neither can see or change
the other's jobs, queues, workers or dead letters, and a refused call changes no row.

Identities come from tests/integration/tenancy_support.py, the one seam to swap for real
credentials."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2

from jobq.auth.principal import ALL_TENANTS, Role
from jobq.server.app import ServerApp
from jobq.v1 import admin_service_pb2 as apb
from jobq.v1 import (
    admin_service_pb2_grpc,
    job_pb2,
    job_service_pb2_grpc,
    queue_pb2,
    worker_pb2,
    worker_service_pb2_grpc,
)
from jobq.v1 import job_service_pb2 as jpb
from jobq.v1 import worker_service_pb2 as wpb
from tests.integration.backends import BACKENDS, database_url, fingerprinter
from tests.integration.tenancy_support import caller_channel, tenancy_server

NO_WAIT = duration_pb2.Duration(seconds=0)
NOT_FOUND = grpc.StatusCode.NOT_FOUND
DENIED = grpc.StatusCode.PERMISSION_DENIED
NOT_REGISTERED = grpc.StatusCode.FAILED_PRECONDITION


class Caller:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.channel = channel
        self.jobs = job_service_pb2_grpc.JobServiceStub(channel)
        self.workers = worker_service_pb2_grpc.WorkerServiceStub(channel)
        self.admin = admin_service_pb2_grpc.AdminServiceStub(channel)

    async def submit(self, queue: str = "default", **fields: Any) -> job_pb2.Job:
        job = job_pb2.Job(type="echo", payload='{"secret": 1}', queue=queue, **fields)
        return (await self.jobs.Submit(jpb.SubmitRequest(job=job))).job

    async def register(self, queues: tuple[str, ...] = ("default",), worker_id: str = "") -> str:
        response = await self.workers.RegisterWorker(
            wpb.RegisterWorkerRequest(
                worker_id=worker_id, hostname="h", queues=list(queues), capacity=10
            )
        )
        return response.worker_id

    async def lease(self, worker_id: str, queues: tuple[str, ...] = ()) -> list[job_pb2.Job]:
        response = await self.workers.LeaseJobs(
            wpb.LeaseJobsRequest(
                worker_id=worker_id, queues=list(queues), max_jobs=10, wait=NO_WAIT
            )
        )
        return list(response.jobs)


class World:
    """One server; callers of tenants acme and globex; a row fingerprint."""

    def __init__(self, app: ServerApp, fingerprint: Any) -> None:
        self.app = app
        self.fingerprint = fingerprint
        self._channels: list[grpc.aio.Channel] = []
        self.acme = self.caller("acme")
        self.globex = self.caller("globex")

    def caller(
        self, tenant: str, roles: frozenset[Role] = frozenset(Role), subject: str | None = None
    ) -> Caller:
        channel = caller_channel(self.app, tenant, roles, subject)
        self._channels.append(channel)
        return Caller(channel)

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()

    async def refused(self, call: Any, code: grpc.StatusCode) -> str:
        """Await `call`; assert it fails with `code` and changed no row."""
        before = self.fingerprint()
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call
        assert raised.value.code() == code, raised.value.details()
        assert self.fingerprint() == before, "a refused call must change nothing"
        return str(raised.value.details())


@pytest.fixture(params=BACKENDS)
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    url = database_url(request, request.param, tmp_path)
    async with tenancy_server(url) as app:
        fingerprint, close = fingerprinter(url)
        made = World(app, fingerprint)
        try:
            yield made
        finally:
            await made.close()
            close()


# --- jobs -------------------------------------------------------------------------------


async def test_neither_tenant_can_get_list_cancel_or_watch_the_others_jobs(world) -> None:
    acme, globex = world.acme, world.globex
    mine = await acme.submit()
    theirs = await globex.submit()
    assert (mine.tenant, theirs.tenant) == ("acme", "globex"), "the caller's tenant applies"

    details = await world.refused(globex.jobs.GetJob(jpb.GetJobRequest(id=mine.id)), NOT_FOUND)
    assert details == f"job {mine.id} not found", "the same words as for an id nobody has"
    await world.refused(
        globex.jobs.CancelJob(jpb.CancelJobRequest(id=mine.id, reason="x")), NOT_FOUND
    )
    stream = globex.jobs.WatchJob(jpb.WatchJobRequest(id=mine.id))
    await world.refused(stream.read(), NOT_FOUND)

    listed = await globex.jobs.ListJobs(jpb.ListJobsRequest())
    assert [j.id for j in listed.jobs] == [theirs.id]
    # Naming the other tenant in the filter is refused without looking at any data.
    await world.refused(globex.jobs.ListJobs(jpb.ListJobsRequest(tenant="acme")), DENIED)
    assert (await acme.jobs.GetJob(jpb.GetJobRequest(id=mine.id))).payload == '{"secret": 1}'


async def test_submitting_into_another_tenant_is_permission_denied_naming_the_field(
    world,
) -> None:
    job = job_pb2.Job(type="echo", payload="{}", tenant="globex")
    details = await world.refused(world.acme.jobs.Submit(jpb.SubmitRequest(job=job)), DENIED)
    assert details.startswith("job.tenant")
    batch = [job_pb2.Job(type="echo", payload="{}"), job]
    details = await world.refused(
        world.acme.jobs.SubmitBatch(jpb.SubmitBatchRequest(jobs=batch)), DENIED
    )
    assert details.startswith("jobs[1].tenant"), "and the batch stores nothing"
    own = await world.acme.submit(tenant="acme")
    assert own.tenant == "acme", "naming one's own tenant is fine"


async def test_an_all_tenants_principal_submits_anywhere_and_sees_every_tenant(world) -> None:
    platform = world.caller(ALL_TENANTS, subject="platform")
    default = await platform.submit()
    placed = await platform.submit(tenant="globex")
    assert (default.tenant, placed.tenant) == ("default", "globex")
    assert (await world.globex.jobs.GetJob(jpb.GetJobRequest(id=placed.id))).id == placed.id
    listed = await platform.jobs.ListJobs(jpb.ListJobsRequest())
    assert {j.id for j in listed.jobs} == {default.id, placed.id}
    only = await platform.jobs.ListJobs(jpb.ListJobsRequest(tenant="globex"))
    assert [j.id for j in only.jobs] == [placed.id]


async def test_a_watch_follows_only_the_callers_job_to_its_end(world) -> None:
    acme = world.acme
    job = await acme.submit()
    stream = acme.jobs.WatchJob(jpb.WatchJobRequest(id=job.id))
    first = await asyncio.wait_for(stream.read(), 10)
    assert first.job.id == job.id and first.job.tenant == "acme"
    await acme.jobs.CancelJob(jpb.CancelJobRequest(id=job.id, reason="done"))
    change = await asyncio.wait_for(stream.read(), 10)
    assert change.change.state == job_pb2.JOB_STATE_CANCELLED


# --- queues ---------------------------------------------------------------------------


async def test_one_queue_name_in_two_tenants_is_two_queues(world) -> None:
    acme, globex = world.acme, world.globex
    for caller in (acme, globex):
        created = await caller.admin.CreateQueue(
            apb.CreateQueueRequest(queue=queue_pb2.Queue(name="emails", weight=3))
        )
        assert created.name == "emails"
    acme_job = await acme.submit("emails")
    globex_job = await globex.submit("emails")

    await acme.admin.PauseQueue(apb.PauseQueueRequest(name="emails"))
    mine = await acme.admin.GetQueue(apb.GetQueueRequest(name="emails"))
    theirs = await globex.admin.GetQueue(apb.GetQueueRequest(name="emails"))
    assert (mine.tenant, mine.paused) == ("acme", True)
    assert (theirs.tenant, theirs.paused) == ("globex", False), "pausing one left the other"

    purged = await acme.admin.PurgeQueue(apb.PurgeQueueRequest(name="emails"))
    assert purged.cancelled == 1
    got = await globex.jobs.GetJob(jpb.GetJobRequest(id=globex_job.id))
    assert got.state == job_pb2.JOB_STATE_QUEUED, "purging acme's emails left globex's job"
    assert (await acme.jobs.GetJob(jpb.GetJobRequest(id=acme_job.id))).state == (
        job_pb2.JOB_STATE_CANCELLED
    )

    stats = await globex.admin.GetQueueStats(apb.GetQueueStatsRequest())
    assert [(s.tenant, s.queue, s.by_state["queued"]) for s in stats.stats] == [
        ("globex", "emails", 1)
    ]
    listed = await globex.admin.ListQueues(apb.ListQueuesRequest())
    assert [(q.tenant, q.name) for q in listed.queues] == [("globex", "emails")]


async def test_another_tenants_queue_is_not_found_and_cannot_be_changed(world) -> None:
    acme, globex = world.acme, world.globex
    await acme.admin.CreateQueue(apb.CreateQueueRequest(queue=queue_pb2.Queue(name="billing")))
    await acme.submit("billing")
    name = "billing"
    for call in (
        globex.admin.GetQueue(apb.GetQueueRequest(name=name)),
        globex.admin.PauseQueue(apb.PauseQueueRequest(name=name)),
        globex.admin.ResumeQueue(apb.ResumeQueueRequest(name=name)),
        globex.admin.PurgeQueue(apb.PurgeQueueRequest(name=name)),
        globex.admin.GetQueueStats(apb.GetQueueStatsRequest(name=name)),
        globex.admin.UpdateQueue(
            apb.UpdateQueueRequest(
                queue=queue_pb2.Queue(name=name, weight=9),
                update_mask=field_mask_pb2.FieldMask(paths=["weight"]),
            )
        ),
    ):
        await world.refused(call, NOT_FOUND)
    for call in (
        globex.admin.GetQueue(apb.GetQueueRequest(name=name, tenant="acme")),
        globex.admin.PurgeQueue(apb.PurgeQueueRequest(name=name, tenant="acme")),
        globex.admin.PauseQueue(apb.PauseQueueRequest(name=name, tenant="acme")),
        globex.admin.GetQueueStats(apb.GetQueueStatsRequest(tenant="acme")),
        globex.admin.CreateQueue(
            apb.CreateQueueRequest(queue=queue_pb2.Queue(name="x", tenant="acme"))
        ),
    ):
        await world.refused(call, DENIED)
    # Nor can a queue be moved into another tenant.
    await world.refused(
        acme.admin.UpdateQueue(
            apb.UpdateQueueRequest(
                queue=queue_pb2.Queue(name=name, tenant="globex"),
                update_mask=field_mask_pb2.FieldMask(paths=["tenant"]),
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert not (await acme.admin.GetQueue(apb.GetQueueRequest(name=name))).paused


# --- workers ----------------------------------------------------------------------------


async def test_a_worker_leases_only_its_own_tenants_jobs(world) -> None:
    acme, globex = world.acme, world.globex
    acme_job = await acme.submit()
    globex_job = await globex.submit()
    globex_worker = await globex.register()
    assert [j.id for j in await globex.lease(globex_worker)] == [globex_job.id]
    assert await globex.lease(globex_worker) == [], "acme's job in a queue of the same name"
    acme_worker = await acme.register()
    assert [j.id for j in await acme.lease(acme_worker)] == [acme_job.id]


async def test_an_all_tenants_worker_serves_its_queue_names_in_every_tenant(world) -> None:
    platform = world.caller(ALL_TENANTS, subject="platform-worker")
    acme_job = await world.acme.submit()
    globex_job = await world.globex.submit()
    worker = await platform.register()
    leased = await platform.lease(worker)
    assert {j.id for j in leased} == {acme_job.id, globex_job.id}


async def test_another_principals_worker_id_is_unknown_to_every_worker_call(world) -> None:
    acme, globex = world.acme, world.globex
    await acme.submit()
    await acme.submit()
    worker = await acme.register()
    held = await acme.lease(worker)
    lease = wpb.LeaseRef(job_id=held[0].id, attempt=held[0].attempt)
    # The same tenant's other principal is refused as well: a worker id is its subject's.
    for intruder in (globex, world.caller("acme", subject="acme-other-worker")):
        w = intruder.workers
        for call in (
            w.Heartbeat(wpb.HeartbeatRequest(worker_id=worker, leases=[lease])),
            w.LeaseJobs(wpb.LeaseJobsRequest(worker_id=worker, max_jobs=1, wait=NO_WAIT)),
            w.CompleteJob(wpb.CompleteJobRequest(worker_id=worker, lease=lease, result='"x"')),
            w.FailJob(wpb.FailJobRequest(worker_id=worker, lease=lease, error="forged")),
            w.ReportProgress(
                wpb.ReportProgressRequest(worker_id=worker, lease=lease, progress=0.5)
            ),
            w.ReportOutcomes(
                wpb.ReportOutcomesRequest(
                    worker_id=worker,
                    outcomes=[
                        wpb.Outcome(lease=lease, completed=wpb.Outcome.Completed(result="1"))
                    ],
                )
            ),
            w.ReleaseJobs(wpb.ReleaseJobsRequest(worker_id=worker, leases=[lease])),
        ):
            details = await world.refused(call, NOT_REGISTERED)
            assert details == f"worker {worker} is not registered"
        await world.refused(
            w.DeregisterWorker(wpb.DeregisterWorkerRequest(worker_id=worker)), NOT_FOUND
        )
        await world.refused(
            w.RegisterWorker(
                wpb.RegisterWorkerRequest(
                    worker_id=worker, hostname="evil", queues=["default"], capacity=1
                )
            ),
            grpc.StatusCode.ALREADY_EXISTS,
        )
        # Its own worker cannot complete a job leased to another worker either.
        own = await intruder.register()
        await world.refused(
            intruder.workers.CompleteJob(
                wpb.CompleteJobRequest(worker_id=own, lease=lease, result='"forged"')
            ),
            grpc.StatusCode.FAILED_PRECONDITION,
        )
    done = await acme.workers.CompleteJob(
        wpb.CompleteJobRequest(worker_id=worker, lease=lease, result='"ok"')
    )
    assert (done.state, done.result) == (job_pb2.JOB_STATE_SUCCEEDED, '"ok"')


async def test_operators_list_and_drain_only_their_tenants_workers(world) -> None:
    acme, globex = world.acme, world.globex
    acme_worker = await acme.register()
    globex_worker = await globex.register()
    listed = await globex.admin.ListWorkers(apb.ListWorkersRequest())
    assert [(w.id, w.tenant, w.subject) for w in listed.workers] == [
        (globex_worker, "globex", "jwt:globex-caller")  # the subject of its JWT
    ]
    await world.refused(
        globex.admin.DrainWorker(apb.DrainWorkerRequest(worker_id=acme_worker)), NOT_FOUND
    )
    drained = await acme.admin.DrainWorker(apb.DrainWorkerRequest(worker_id=acme_worker))
    assert drained.state == worker_pb2.WORKER_STATE_DRAINING
    stats = await globex.admin.GetClusterStats(apb.GetClusterStatsRequest())
    assert stats.active_workers == 1


# --- dead letters and stats -------------------------------------------------------------


async def test_dead_letters_are_listed_replayed_and_discarded_only_in_their_tenant(
    world,
) -> None:
    acme, globex = world.acme, world.globex
    job = await acme.submit()
    worker = await acme.register()
    (held,) = await acme.lease(worker)
    await acme.workers.FailJob(
        wpb.FailJobRequest(
            worker_id=worker,
            lease=wpb.LeaseRef(job_id=held.id, attempt=held.attempt),
            error="boom",
            retryable=False,
        )
    )
    listed = await globex.admin.ListDeadLetters(apb.ListDeadLettersRequest())
    assert list(listed.jobs) == []
    by_id = apb.DeadLetterSelector(ids=[job.id])
    await world.refused(
        globex.admin.ReplayDeadLetters(apb.ReplayDeadLettersRequest(selector=by_id)), NOT_FOUND
    )
    await world.refused(
        globex.admin.DiscardDeadLetters(apb.DiscardDeadLettersRequest(selector=by_id)), NOT_FOUND
    )
    by_queue = apb.DeadLetterSelector(queue="default")
    none = await globex.admin.ReplayDeadLetters(apb.ReplayDeadLettersRequest(selector=by_queue))
    assert none.replayed == 0
    assert [
        j.id for j in (await acme.admin.ListDeadLetters(apb.ListDeadLettersRequest())).jobs
    ] == [job.id]
    replayed = await acme.admin.ReplayDeadLetters(apb.ReplayDeadLettersRequest(selector=by_id))
    assert replayed.replayed == 1


async def test_cluster_stats_count_only_the_callers_tenant(world) -> None:
    await world.acme.submit()
    await world.acme.submit()
    await world.globex.submit()
    acme = await world.acme.admin.GetClusterStats(apb.GetClusterStatsRequest())
    globex = await world.globex.admin.GetClusterStats(apb.GetClusterStatsRequest())
    assert (acme.jobs_by_state["queued"], acme.queues) == (2, 1)
    assert (globex.jobs_by_state["queued"], globex.queues) == (1, 1)
    assert (acme.outbox_backlog, globex.outbox_backlog) == (0, 0), "shared plumbing, hidden"
    platform = world.caller(ALL_TENANTS, subject="platform")
    everything = await platform.admin.GetClusterStats(apb.GetClusterStatsRequest())
    assert (everything.jobs_by_state["queued"], everything.queues) == (3, 2)
    assert everything.outbox_backlog == 3
