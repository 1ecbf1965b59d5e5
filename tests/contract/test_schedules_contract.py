"""Schedules in every store: by (tenant, name), updated, due, and each fire time recorded
once by a compare-and-set that writes its run and its `schedule_fired` outbox event."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from jobq.core.errors import AlreadyExists, NotFound
from jobq.core.schedules import (
    RUNS_KEPT,
    Advance,
    CatchUp,
    Overlap,
    RunOutcome,
    Schedule,
    ScheduledJob,
    ScheduleRun,
)
from jobq.core.states import EventKind
from jobq.core.validation import JobSpec, Limits, validate_job
from jobq.ids import new_id
from jobq.store.base import Store

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
SECOND = dt.timedelta(seconds=1)


def make(name: str = "nightly", tenant: str = "acme", **fields: object) -> Schedule:
    base = Schedule(
        id=new_id(),
        tenant=tenant,
        name=name,
        job=ScheduledJob(type="report.build", queue="reports", payload='{"a": 1}', priority=3),
        cron="30 2 * * *",
        time_zone="Europe/Berlin",
        overlap=Overlap.BUFFER_ONE,
        catch_up=CatchUp.LATEST,
        catch_up_window=dt.timedelta(minutes=10),
        jitter=dt.timedelta(seconds=5),
        start_at=NOW,
        end_at=NOW + dt.timedelta(days=30),
        next_fire_at=NOW + SECOND,
        created_at=NOW,
        updated_at=NOW,
    )
    return dataclasses.replace(base, **fields)  # type: ignore[arg-type]


async def a_job(store: Store, tenant: str = "acme") -> str:
    job = validate_job(
        JobSpec(type="report.build", queue="reports", tenant=tenant),
        now=NOW,
        limits=Limits(),
        new_id=new_id,
    )
    [result] = await store.jobs.submit([job], NOW)
    return result.job.id


async def test_a_created_schedule_reads_back_with_every_field(store: Store) -> None:
    schedule = make()
    await store.schedules.create(schedule)
    assert await store.schedules.get("nightly", tenant="acme") == schedule
    interval = make("every-minute", cron=None, interval=dt.timedelta(minutes=1), start_at=None)
    await store.schedules.create(interval)
    assert await store.schedules.get("every-minute", tenant="acme") == interval


async def test_a_name_is_unique_within_its_tenant_only(store: Store) -> None:
    await store.schedules.create(make())
    with pytest.raises(AlreadyExists):
        await store.schedules.create(make())
    await store.schedules.create(make(tenant="globex"))
    assert await store.schedules.get("nightly", tenant="other") is None
    assert [s.tenant for s in await store.schedules.all()] == ["acme", "globex"]
    assert [s.tenant for s in await store.schedules.all(tenant="globex")] == ["globex"]


async def test_update_changes_only_the_named_fields(store: Store) -> None:
    schedule = await store.schedules.create(make())
    later = NOW + dt.timedelta(minutes=1)
    job = ScheduledJob(type="other", queue="q2", payload="[]", priority=-1, max_attempts=3)
    updated = await store.schedules.update(
        "nightly",
        {
            "paused": True,
            "job": job,
            "cron": None,
            "interval": dt.timedelta(hours=1),
            "overlap": Overlap.ALLOW,
        },
        later,
        tenant="acme",
    )
    assert updated == dataclasses.replace(
        schedule,
        paused=True,
        job=job,
        cron=None,
        interval=dt.timedelta(hours=1),
        overlap=Overlap.ALLOW,
        updated_at=later,
    )
    with pytest.raises(NotFound):
        await store.schedules.update("nightly", {"paused": True}, later, tenant="globex")


async def test_delete_removes_the_schedule_and_its_runs(store: Store) -> None:
    schedule = await store.schedules.create(make())
    advance = Advance(schedule.next_fire_at, None, NOW + 2 * SECOND, None, None)
    run = ScheduleRun(NOW + SECOND, RunOutcome.SKIPPED, None, NOW)
    assert await store.schedules.record(schedule.id, [run], advance, NOW)
    await store.schedules.delete("nightly", tenant="acme")
    assert await store.schedules.get("nightly", tenant="acme") is None
    assert await store.schedules.runs(schedule.id, 10) == []
    with pytest.raises(NotFound):
        await store.schedules.delete("nightly", tenant="acme")


async def test_due_is_unpaused_schedules_past_their_fire_time_or_buffering(store: Store) -> None:
    await store.schedules.create(make("a", next_fire_at=NOW - SECOND))
    await store.schedules.create(make("b", next_fire_at=NOW + SECOND))
    await store.schedules.create(make("c", next_fire_at=NOW - SECOND, paused=True))
    await store.schedules.create(
        make("d", tenant="globex", next_fire_at=None, buffered_fire_at=NOW - 5 * SECOND)
    )
    await store.schedules.create(make("e", next_fire_at=None))
    assert [s.name for s in await store.schedules.due(NOW, 10)] == ["a", "d"]
    assert len(await store.schedules.due(NOW, 1)) == 1


async def test_record_applies_once_and_writes_runs_and_one_event_per_submitted_run(
    store: Store,
) -> None:
    schedule = await store.schedules.create(make())
    job_id = await a_job(store)
    fire = NOW + SECOND
    runs = [
        ScheduleRun(fire, RunOutcome.SUBMITTED, job_id, NOW),
        ScheduleRun(fire + SECOND, RunOutcome.BUFFERED, None, NOW),
    ]
    advance = Advance(fire, None, fire + 2 * SECOND, fire + SECOND, job_id)
    assert await store.schedules.record(schedule.id, runs, advance, NOW)
    # A second replica with the same view of the row loses the compare-and-set.
    assert not await store.schedules.record(schedule.id, runs, advance, NOW)
    found = await store.schedules.get("nightly", tenant="acme")
    assert found is not None
    assert (found.next_fire_at, found.buffered_fire_at, found.last_job_id) == (
        fire + 2 * SECOND,
        fire + SECOND,
        job_id,
    )
    assert await store.schedules.runs(schedule.id, 10) == list(reversed(runs))
    fired = [e for e in await store.jobs.events(job_id) if e.kind is EventKind.SCHEDULE_FIRED]
    assert len(fired) == 1
    assert fired[0].tenant == "acme" and fired[0].queue == "reports"
    assert fired[0].details["schedule_id"] == schedule.id
    assert fired[0].details["fire_time"] == fire.isoformat()
    assert fired[0].id in {e.id for e in await store.events.unpublished(100)}


async def test_a_buffered_run_once_submitted_is_recorded_as_submitted(store: Store) -> None:
    schedule = await store.schedules.create(make(next_fire_at=NOW))
    fire = NOW
    buffered = Advance(NOW, None, NOW + SECOND, fire, None)
    assert await store.schedules.record(
        schedule.id, [ScheduleRun(fire, RunOutcome.BUFFERED, None, NOW)], buffered, NOW
    )
    job_id = await a_job(store)
    submitted = Advance(NOW + SECOND, fire, NOW + SECOND, None, job_id)
    assert await store.schedules.record(
        schedule.id, [ScheduleRun(fire, RunOutcome.SUBMITTED, job_id, NOW)], submitted, NOW
    )
    [run] = await store.schedules.runs(schedule.id, 10)
    assert (run.outcome, run.job_id) == (RunOutcome.SUBMITTED, job_id)
    events = await store.jobs.events(job_id)
    assert [e.kind for e in events].count(EventKind.SCHEDULE_FIRED) == 1


async def test_only_the_newest_runs_are_kept(store: Store) -> None:
    schedule = await store.schedules.create(make(next_fire_at=NOW))
    runs = [
        ScheduleRun(NOW + i * SECOND, RunOutcome.SKIPPED, None, NOW) for i in range(RUNS_KEPT + 5)
    ]
    advance = Advance(NOW, None, NOW + 1000 * SECOND, None, None)
    assert await store.schedules.record(schedule.id, runs, advance, NOW)
    kept = await store.schedules.runs(schedule.id, RUNS_KEPT + 10)
    assert len(kept) == RUNS_KEPT and kept[0].fire_at == runs[-1].fire_at
