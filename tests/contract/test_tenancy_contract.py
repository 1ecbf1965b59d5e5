"""The store's tenant scope, on every backend: each query a caller reaches sees only the
scope's tenant (None: every tenant), and a queue is (tenant, name)."""

from __future__ import annotations

import dataclasses

import pytest

from jobq.core.clock import FixedClock
from jobq.core.errors import AlreadyExists, NotFound, StaleLease
from jobq.core.model import JobFilter, QueueConfig, WorkerInfo, WorkerState
from jobq.core.states import EventKind, JobState
from jobq.store.base import DeadLetterSelector, Store

from .helpers import lease_of, register, seconds, submit
from .test_store_contract import failed

S = JobState


async def two_tenants(store: Store, clock: FixedClock):
    """A job of acme and one of globex, both in a queue named "emails"."""
    acme = await submit(store, clock, queue="emails", tenant="acme")
    globex = await submit(store, clock, queue="emails", tenant="globex")
    return acme, globex


async def test_get_and_cancel_see_only_the_scopes_tenant(store, clock) -> None:
    acme, globex = await two_tenants(store, clock)
    assert await store.jobs.get(acme.id, tenant="globex") is None
    assert (await store.jobs.get(acme.id, tenant="acme")) == acme
    assert (await store.jobs.get(acme.id, tenant=None)) == acme, "None: every tenant"
    with pytest.raises(NotFound):
        await store.jobs.cancel(acme.id, clock.now(), "x", tenant="globex")
    assert (await store.jobs.get(acme.id)).state is S.QUEUED, "a refused cancel changes nothing"
    cancelled = await store.jobs.cancel(globex.id, clock.now(), "x", tenant="globex")
    assert cancelled.state is S.CANCELLED


async def test_page_lists_only_the_scopes_tenant(store, clock) -> None:
    acme, globex = await two_tenants(store, clock)
    page = await store.jobs.page(JobFilter(), 10, None, tenant="acme")
    assert [j.id for j in page.jobs] == [acme.id]
    both = await store.jobs.page(JobFilter(), 10, None, tenant=None)
    assert {j.id for j in both.jobs} == {acme.id, globex.id}
    crossed = await store.jobs.page(JobFilter(tenant="globex"), 10, None, tenant="acme")
    assert crossed.jobs == [], "a filter never widens the scope"


async def test_one_queue_name_is_a_queue_per_tenant(store, clock) -> None:
    await two_tenants(store, clock)
    acme_q = await store.queues.get("emails", tenant="acme")
    globex_q = await store.queues.get("emails", tenant="globex")
    assert acme_q is not None and globex_q is not None
    assert (acme_q.tenant, globex_q.tenant) == ("acme", "globex")
    assert await store.queues.get("emails") is None, "no queue of that name in 'default'"
    await store.queues.create(QueueConfig(name="reports", tenant="acme"), clock.now())
    await store.queues.create(QueueConfig(name="reports", tenant="globex"), clock.now())
    with pytest.raises(AlreadyExists):
        await store.queues.create(QueueConfig(name="reports", tenant="acme"), clock.now())
    assert [q.name for q in await store.queues.all(tenant="acme")] == ["emails", "reports"]
    everyone = await store.queues.all(tenant=None)
    assert [(q.name, q.tenant) for q in everyone] == [
        ("emails", "acme"),
        ("emails", "globex"),
        ("reports", "acme"),
        ("reports", "globex"),
    ]


async def test_update_and_purge_act_on_one_tenants_queue(store, clock) -> None:
    acme, globex = await two_tenants(store, clock)
    paused = await store.queues.update("emails", {"paused": True}, clock.now(), tenant="acme")
    assert paused.paused and paused.tenant == "acme"
    assert not (await store.queues.get("emails", tenant="globex")).paused
    kept = await store.queues.update(
        "emails", {"tenant": "globex", "weight": 5}, clock.now(), tenant="acme"
    )
    assert (kept.tenant, kept.weight) == ("acme", 5), "a change never moves a queue"
    with pytest.raises(NotFound):
        await store.queues.update("emails", {"paused": True}, clock.now(), tenant="initech")
    with pytest.raises(NotFound):
        await store.queues.purge("emails", clock.now(), tenant="initech")
    assert await store.queues.purge("emails", clock.now(), tenant="acme") == 1
    assert (await store.jobs.get(acme.id)).state is S.CANCELLED
    assert (await store.jobs.get(globex.id)).state is S.QUEUED


async def test_stats_count_each_tenants_queue_apart(store, clock) -> None:
    await two_tenants(store, clock)
    await submit(store, clock, queue="emails", tenant="acme")
    stats = await store.queues.stats(None, clock.now(), tenant=None)
    assert [(s.queue, s.tenant, s.by_state["queued"]) for s in stats] == [
        ("emails", "acme", 2),
        ("emails", "globex", 1),
    ]
    mine = await store.queues.stats("emails", clock.now(), tenant="globex")
    assert [(s.tenant, s.by_state["queued"]) for s in mine] == [("globex", 1)]
    with pytest.raises(NotFound):
        await store.queues.stats("emails", clock.now(), tenant="initech")


async def test_lease_takes_only_the_scopes_tenants_jobs(store, clock) -> None:
    acme, globex = await two_tenants(store, clock)
    await register(store, clock, "w-globex", ("emails",))
    leased = await store.jobs.lease("w-globex", ["emails"], 10, clock.now(), tenant="globex")
    assert [j.id for j in leased] == [globex.id]
    assert await store.jobs.lease("w-globex", ["emails"], 10, clock.now(), tenant="globex") == []
    await register(store, clock, "w-all", ("emails",))
    everyone = await store.jobs.lease("w-all", ["emails"], 10, clock.now(), tenant=None)
    assert [j.id for j in everyone] == [acme.id]


async def test_a_paused_queue_of_one_tenant_leaves_the_others_leasable(store, clock) -> None:
    await two_tenants(store, clock)
    await store.queues.update("emails", {"paused": True}, clock.now(), tenant="acme")
    await register(store, clock)
    leased = await store.jobs.lease("w1", ["emails"], 10, clock.now(), tenant=None)
    assert [j.tenant for j in leased] == ["globex"]


async def test_concurrency_limits_count_one_tenants_queue(store, clock) -> None:
    await two_tenants(store, clock)
    for tenant in ("acme", "globex"):
        await store.queues.update("emails", {"concurrency_limit": 1}, clock.now(), tenant=tenant)
    await register(store, clock)
    leased = await store.jobs.lease("w1", ["emails"], 10, clock.now(), tenant=None)
    assert sorted(j.tenant for j in leased) == ["acme", "globex"], "one running in each"


async def test_idempotency_keys_are_per_tenant(store, clock) -> None:
    first = await submit(store, clock, tenant="acme", idempotency_key="k", payload="1")
    other = await submit(store, clock, tenant="globex", idempotency_key="k", payload="2")
    again = await submit(store, clock, tenant="acme", idempotency_key="k", payload="1")
    assert other.id != first.id and again.id == first.id


async def test_dead_letters_are_replayed_and_discarded_only_in_scope(store, clock) -> None:
    acme, globex = await two_tenants(store, clock)
    await register(store, clock, queues=("emails",))
    for job in await store.jobs.lease("w1", ["emails"], 10, clock.now()):
        await store.jobs.report("w1", [failed(job, retryable=False)], clock.now())
    by_id = DeadLetterSelector(ids=(acme.id,))
    for call in (store.jobs.replay_dead, store.jobs.discard_dead):
        with pytest.raises(NotFound):
            await call(by_id, clock.now(), tenant="globex")
    by_queue = DeadLetterSelector(queue="emails")
    assert await store.jobs.replay_dead(by_queue, clock.now(), tenant="globex") == 1
    assert (await store.jobs.get(acme.id)).state is S.DEAD, "acme's stays dead"
    assert (await store.jobs.get(globex.id)).state is S.QUEUED
    assert await store.jobs.discard_dead(by_id, clock.now(), tenant="acme") == 1


async def test_events_carry_their_jobs_tenant(store, clock) -> None:
    acme, _ = await two_tenants(store, clock)
    await store.jobs.cancel(acme.id, clock.now(), "x")
    events = await store.jobs.events(acme.id)
    assert [(e.kind, e.tenant) for e in events] == [
        (EventKind.SUBMITTED, "acme"),
        (EventKind.CANCELLED, "acme"),
    ]
    outbox = await store.events.unpublished(10)
    assert {e.tenant for e in outbox} == {"acme", "globex"}


def worker(worker_id: str, clock: FixedClock, tenant: str, subject: str) -> WorkerInfo:
    return WorkerInfo(
        id=worker_id,
        hostname="h",
        queues=("default",),
        capacity=1,
        state=WorkerState.ACTIVE,
        started_at=clock.now(),
        last_heartbeat=clock.now(),
        tenant=tenant,
        subject=subject,
    )


async def test_workers_record_tenant_and_subject_and_are_listed_in_scope(store, clock) -> None:
    await store.workers.register(worker("wa", clock, "acme", "key-a"))
    await store.workers.register(worker("wg", clock, "globex", "key-g"))
    got = await store.workers.get("wa", tenant="acme")
    assert got is not None and (got.tenant, got.subject) == ("acme", "key-a")
    assert await store.workers.get("wa", tenant="globex") is None
    listed = await store.workers.all(clock.now(), seconds(30), tenant="globex")
    assert [w.id for w in listed] == ["wg"]
    with pytest.raises(NotFound):
        await store.workers.set_state("wa", WorkerState.DRAINING, tenant="globex")
    assert (await store.workers.get("wa")).state is WorkerState.ACTIVE


async def test_a_worker_id_belongs_to_its_subject_until_it_stops(store, clock) -> None:
    await store.workers.register(worker("w", clock, "acme", "key-a"))
    with pytest.raises(AlreadyExists):
        await store.workers.register(worker("w", clock, "globex", "key-g"))
    assert (await store.workers.get("w")).subject == "key-a", "a refused register changes nothing"
    again = dataclasses.replace(worker("w", clock, "acme", "key-a"), hostname="new")
    await store.workers.register(again)
    assert (await store.workers.get("w")).hostname == "new", "its own subject re-registers"
    await store.workers.set_state("w", WorkerState.STOPPED)
    await store.workers.register(worker("w", clock, "globex", "key-g"))
    assert (await store.workers.get("w")).tenant == "globex", "a stopped id is free again"


async def test_leases_of_a_tenants_job_use_that_tenants_queue_settings(store, clock) -> None:
    await store.queues.create(
        QueueConfig(name="emails", tenant="acme", max_attempts=1), clock.now()
    )
    await store.queues.create(
        QueueConfig(name="emails", tenant="globex", max_attempts=5), clock.now()
    )
    acme, globex = await two_tenants(store, clock)
    assert (acme.max_attempts, globex.max_attempts) == (1, 5)
    await register(store, clock, queues=("emails",))
    for job in await store.jobs.lease("w1", ["emails"], 10, clock.now()):
        await store.jobs.report("w1", [failed(job)], clock.now())
    assert (await store.jobs.get(acme.id)).state is S.DEAD
    assert (await store.jobs.get(globex.id)).state is S.SCHEDULED


async def test_a_stopped_worker_id_still_holding_leases_cannot_be_taken_over(store, clock) -> None:
    await store.workers.register(worker("w", clock, "acme", "key-a"))
    job = await submit(store, clock, tenant="acme")
    assert await store.jobs.lease("w", ["default"], 1, clock.now(), tenant="acme")
    await store.workers.set_state("w", WorkerState.STOPPED)
    with pytest.raises(AlreadyExists):
        await store.workers.register(worker("w", clock, "globex", "key-g"))
    assert (await store.jobs.get(job.id)).worker_id == "w"
    assert (await store.workers.get("w")).tenant == "acme", "nothing changed"


async def test_worker_calls_in_another_scope_hold_nothing_of_the_job(store, clock) -> None:
    job = await submit(store, clock, tenant="acme")
    await register(store, clock)
    (held,) = await store.jobs.lease("w1", ["default"], 1, clock.now(), tenant="acme")
    ref = lease_of(held)
    beat = await store.jobs.heartbeat("w1", [ref], clock.now(), tenant="globex")
    assert [(s.lease, s.reason) for s in beat.stale] == [(ref, "no such job")]
    released = await store.jobs.release("w1", [ref], clock.now(), tenant="globex")
    assert released.released == 0
    with pytest.raises(StaleLease):
        await store.jobs.report("w1", [failed(held)], clock.now(), tenant="globex")
    with pytest.raises(StaleLease):
        await store.jobs.report_progress("w1", ref, 0.5, "", clock.now(), tenant="globex")
    assert (await store.jobs.get(job.id)).state is S.RUNNING, "nothing changed"
    done = await store.jobs.report("w1", [failed(held)], clock.now(), tenant="acme")
    assert done[0].state is S.SCHEDULED
