"""Schedules over real gRPC and a real store, the leader's firing driven by an injected
clock: every RPC, each overlap policy with a job slower than the interval (it is still
unfinished at the next fire time), catch-up after downtime, and one job per fire time."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from jobq.client import AsyncClient
from jobq.core.clock import FixedClock
from jobq.core.errors import AlreadyExists, InvalidArgument, NotFound, PermissionDenied
from jobq.core.model import LeaseRef, Outcome, OutcomeKind
from jobq.core.schedules import RunOutcome
from jobq.core.states import EventKind, JobState
from jobq.server.app import ServerApp
from tests.auth_keys import ADMIN_KEY, OPERATOR_KEY, SUBMITTER_KEY
from tests.integration.backends import BACKENDS, database_url, running

T0 = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
SECOND = dt.timedelta(seconds=1)


@pytest.fixture(params=BACKENDS)
async def served(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[ServerApp, FixedClock, AsyncClient]]:
    clock = FixedClock(T0)
    url = database_url(request, request.param, tmp_path)
    async with running(url) as app:
        # The test's clock drives firing: the app's own loops stay idle (one-hour interval).
        app.service.clock = clock
        app.schedules._clock = clock
        async with AsyncClient(f"127.0.0.1:{app.grpc_port}", token=OPERATOR_KEY) as client:
            yield app, clock, client


async def schedule_jobs(app: ServerApp, name: str = "every-second") -> list[Any]:
    page = await app.store.jobs.page(_filter(), 1000, None)
    return sorted(
        (j for j in page.jobs if (j.idempotency_key or "").startswith("schedule:")),
        key=lambda j: j.run_at,
    )


def _filter() -> Any:
    from jobq.core.model import JobFilter

    return JobFilter()


async def tick(app: ServerApp, clock: FixedClock, seconds: float = 1.0) -> None:
    clock.advance(seconds)
    await app.schedules.fire_due()


async def finish(app: ServerApp, clock: FixedClock) -> None:
    """A worker leases every queued job and completes it."""
    jobs = await app.store.jobs.lease("w1", ["default"], 100, clock.now())
    outcomes = [Outcome(LeaseRef(j.id, j.attempt), OutcomeKind.COMPLETED, "null") for j in jobs]
    if outcomes:
        await app.store.jobs.report("w1", outcomes, clock.now())


async def test_the_rpcs_create_get_list_update_pause_resume_trigger_delete(served: Any) -> None:
    app, _clock, client = served
    created = await client.schedules.create(
        "nightly",
        cron="30 2 * * *",
        time_zone="Europe/Berlin",
        type="report.build",
        payload={"full": True},
        queue="reports",
        jitter="10s",
    )
    assert created.id and created.tenant == "default"
    assert created.next_fire_at == dt.datetime(2026, 12, 2, 1, 30, tzinfo=dt.UTC)
    with pytest.raises(AlreadyExists):
        await client.schedules.create("nightly", cron="* * * * *", type="x")
    details = await client.schedules.get("nightly")
    assert len(details.next_fire_times) == 5 and details.recent_runs == []
    assert details.next_fire_times[1] - details.next_fire_times[0] == dt.timedelta(days=1)
    assert [s.name for s in await client.schedules.list()] == ["nightly"]
    updated = await client.schedules.update("nightly", interval="1h", cron=None)
    assert updated.cron is None and updated.interval == dt.timedelta(hours=1)
    assert updated.next_fire_at == T0 + dt.timedelta(hours=1)
    paused = await client.schedules.pause("nightly")
    assert paused.paused and paused.next_fire_at is None
    resumed = await client.schedules.resume("nightly")
    assert not resumed.paused
    run = await client.schedules.trigger("nightly")
    assert run.manual and run.outcome is RunOutcome.SUBMITTED and run.job_id
    job = await app.store.jobs.get(run.job_id)
    assert job is not None and job.queue == "reports" and job.payload == '{"full": true}'
    assert [r.job_id for r in (await client.schedules.get("nightly")).recent_runs] == [run.job_id]
    await client.schedules.delete("nightly")
    with pytest.raises(NotFound):
        await client.schedules.get("nightly")


async def test_bad_schedules_are_refused_naming_the_field(served: Any) -> None:
    _, _, client = served
    cases = [
        ({"type": "x"}, "schedule.cron"),
        ({"type": "x", "cron": "* * *"}, "schedule.cron"),
        ({"type": "x", "cron": "* * * * *", "interval": "1m"}, "schedule.cron"),
        ({"type": "x", "interval": "100ms"}, "schedule.interval"),
        ({"type": "x", "cron": "* * * * *", "time_zone": "Mars/Base"}, "schedule.time_zone"),
        ({"type": "", "cron": "* * * * *"}, "schedule.job.type"),
        ({"type": "x", "cron": "* * * * *", "payload": "{nope"}, "schedule.job.payload"),
        ({"type": "x", "cron": "* * * * *", "catch_up_window": "0s"}, "schedule.catch_up_window"),
        (
            {"type": "x", "cron": "* * * * *", "start_at": T0, "end_at": T0},
            "schedule.end_time",
        ),
    ]
    for options, field in cases:
        with pytest.raises(InvalidArgument) as refused:
            await client.schedules.create("bad", **options)
        assert field in str(refused.value), options
    assert await client.schedules.list() == []


async def test_operators_and_admins_manage_schedules_submitters_may_not(served: Any) -> None:
    app, _, client = served
    await client.schedules.create("s", interval="1m", type="echo")
    address = f"127.0.0.1:{app.grpc_port}"
    async with AsyncClient(address, token=ADMIN_KEY) as admin:
        assert [s.name for s in await admin.schedules.list()] == ["s"]
    async with AsyncClient(address, token=SUBMITTER_KEY) as submitter:
        with pytest.raises(PermissionDenied):
            await submitter.schedules.list()


async def test_skip_never_runs_two_at_once(served: Any) -> None:
    app, clock, client = served
    await client.schedules.create("every-second", interval="1s", type="echo")
    for _ in range(4):  # the first run is still unfinished at each later fire time
        await tick(app, clock)
    jobs = await schedule_jobs(app)
    assert len(jobs) == 1
    runs = (await client.schedules.get("every-second")).recent_runs
    assert [r.outcome for r in reversed(runs)] == [RunOutcome.SUBMITTED] + [RunOutcome.SKIPPED] * 3
    await finish(app, clock)
    await tick(app, clock)
    assert len(await schedule_jobs(app)) == 2


async def test_allow_submits_every_fire_time(served: Any) -> None:
    app, clock, client = served
    await client.schedules.create("every-second", interval="1s", type="echo", overlap="allow")
    for _ in range(4):
        await tick(app, clock)
    jobs = await schedule_jobs(app)
    assert [j.run_at for j in jobs] == [T0 + i * SECOND for i in range(1, 5)]
    assert all(j.state is JobState.QUEUED for j in jobs)


async def test_buffer_one_keeps_one_fire_time_and_runs_it_after_the_previous(served: Any) -> None:
    app, clock, client = served
    await client.schedules.create("every-second", interval="1s", type="echo", overlap="buffer_one")
    for _ in range(3):
        await tick(app, clock)
    assert len(await schedule_jobs(app)) == 1
    outcomes = [
        r.outcome for r in reversed((await client.schedules.get("every-second")).recent_runs)
    ]
    assert outcomes == [RunOutcome.SUBMITTED, RunOutcome.BUFFERED, RunOutcome.SKIPPED]
    await finish(app, clock)
    clock.advance(0.5)  # before the next fire time: the buffered one goes as soon as it may
    await app.schedules.fire_due()
    jobs = await schedule_jobs(app)
    assert len(jobs) == 2 and jobs[1].run_at == T0 + 2 * SECOND  # the buffered fire time's
    runs = (await client.schedules.get("every-second")).recent_runs
    assert {r.fire_at: r.outcome for r in runs}[T0 + 2 * SECOND] is RunOutcome.SUBMITTED


async def test_cancel_previous_cancels_the_unfinished_run(served: Any) -> None:
    app, clock, client = served
    await client.schedules.create(
        "every-second", interval="1s", type="echo", overlap="cancel_previous"
    )
    for _ in range(3):
        await tick(app, clock)
    jobs = await schedule_jobs(app)
    assert [j.state for j in jobs] == [JobState.CANCELLED, JobState.CANCELLED, JobState.QUEUED]


async def test_after_downtime_each_missed_fire_time_in_the_window_runs_once(served: Any) -> None:
    app, clock, client = served
    await client.schedules.create(
        "every-second", interval="1s", type="echo", overlap="allow", catch_up_window="5s"
    )
    await tick(app, clock, 10)  # down for 10 s: fire times 1..10, the window keeps 5..10
    jobs = await schedule_jobs(app)
    assert [j.run_at for j in jobs] == [T0 + i * SECOND for i in range(5, 11)]
    # The same fire times again (a new leader that never saw the record) submit nothing new.
    await app.schedules.fire_due()
    assert len(await schedule_jobs(app)) == 6


async def test_latest_only_after_downtime(served: Any) -> None:
    app, clock, client = served
    await client.schedules.create(
        "every-second", interval="1s", type="echo", overlap="allow", catch_up="latest"
    )
    await tick(app, clock, 10)
    assert [j.run_at for j in await schedule_jobs(app)] == [T0 + 10 * SECOND]


async def test_a_crash_between_submitted_and_recorded_submits_no_second_job(served: Any) -> None:
    app, clock, client = served
    await client.schedules.create("every-second", interval="1s", type="echo", overlap="allow")
    clock.advance(1)
    schedule = await app.store.schedules.get("every-second", tenant="default")
    assert schedule is not None
    # The old leader submitted the fire time's job, then died before recording it.
    first = await app.schedules._submit(schedule, T0 + SECOND, clock.now(), manual=False)
    # The new leader fires the same fire time: the idempotency key finds the same job.
    await app.schedules.fire_due()
    jobs = await schedule_jobs(app)
    assert [j.id for j in jobs] == [first.id]
    events = await app.store.jobs.events(first.id)
    assert [e.kind for e in events].count(EventKind.SCHEDULE_FIRED) == 1


async def test_another_tenants_schedule_is_not_found_or_refused(served: Any) -> None:
    _app, _, client = served
    await client.schedules.create("s", tenant="acme", interval="1m", type="echo")
    assert [s.tenant for s in await client.schedules.list(tenant="acme")] == ["acme"]
    with pytest.raises(NotFound):
        await client.schedules.get("s")  # the all-tenant caller's default tenant has none


async def test_a_resumed_schedule_catches_nothing_up_from_its_pause(served: Any) -> None:
    app, clock, client = served
    await client.schedules.create("every-second", interval="1s", type="echo", overlap="allow")
    await client.schedules.pause("every-second")
    await tick(app, clock, 10)
    assert await schedule_jobs(app) == []
    # Unpaused through Update, as through Resume: the next fire time is after now
    resumed = await client.schedules.update("every-second", paused=False)
    assert resumed.next_fire_at == T0 + 11 * SECOND
    await tick(app, clock)
    assert [j.run_at for j in await schedule_jobs(app)] == [T0 + 11 * SECOND]
