"""The scheduler does singleton work only while it holds the leader lock, and says so."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

import pytest

from jobq.observability.metrics import ServerMetrics
from jobq.server.scheduler import Scheduler


class Lock:
    def __init__(self, outcomes: list[bool | Exception]) -> None:
        self.outcomes = outcomes

    async def try_acquire(self) -> bool:
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def scheduler(lock: Lock, times: list[dt.datetime] | None = None) -> tuple[Scheduler, Any]:
    ticks: list[int] = []
    since: list[dt.datetime | None] = []
    now = iter(times or [dt.datetime(2026, 1, 1, tzinfo=dt.UTC)] * 100)

    async def tick(leader_since: dt.datetime | None = None) -> None:
        ticks.append(1)
        since.append(leader_since)

    service = SimpleNamespace(
        settings=SimpleNamespace(),
        store=SimpleNamespace(leader=lock),
        metrics=ServerMetrics(),
        tick=tick,
        ticks=ticks,
        since=since,
        clock=SimpleNamespace(now=lambda: next(now)),
    )
    return Scheduler(service), service  # type: ignore[arg-type]


def leader_gauge(service: Any) -> float | None:
    value = service.metrics.registry.get_sample_value("jq_leader")
    return None if value is None else float(value)


async def test_given_the_lock_is_held_when_it_ticks_then_it_works_and_reports_leader() -> None:
    made, service = scheduler(Lock([True]))
    await made._lead_and_tick()
    assert service.ticks == [1]
    assert leader_gauge(service) == 1


async def test_given_another_replica_leads_when_it_ticks_then_it_does_nothing() -> None:
    made, service = scheduler(Lock([True, False]))
    await made._lead_and_tick()
    await made._lead_and_tick()
    assert service.ticks == [1]
    assert leader_gauge(service) == 0


async def test_given_the_lock_fails_when_it_ticks_then_it_is_not_the_leader() -> None:
    made, service = scheduler(Lock([True, RuntimeError("lost")]))
    await made._lead_and_tick()
    with pytest.raises(RuntimeError):
        await made._lead_and_tick()
    assert service.ticks == [1]
    assert leader_gauge(service) == 0


async def test_given_it_becomes_leader_then_each_tick_names_when_so_reaping_waits_a_lease() -> None:
    # Given leadership won at t1, kept, lost, and won again at t4 (the clock is read only
    # when leadership is won)
    t1, t4 = (dt.datetime(2026, 1, 1, 0, 0, s, tzinfo=dt.UTC) for s in (1, 4))
    made, service = scheduler(Lock([True, True, False, True]), [t1, t4])
    for _ in range(4):
        await made._lead_and_tick()
    # Then every tick is told when this spell of leadership began (the reaping grace's start)
    assert service.since == [t1, t1, t4]


async def test_stop_ends_a_loop_whose_work_turned_the_cancellation_into_an_error() -> None:
    """Given a tick in flight whose driver answers cancellation with its own error (as psycopg
    does for a query cancelled mid-flight), stop() still ends the loop instead of letting it
    sleep out its interval (here an hour)."""
    import asyncio

    started = asyncio.Event()

    async def work() -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            raise RuntimeError("query cancelled") from None

    made, _ = scheduler(Lock([]))
    loop_task = asyncio.create_task(made._every(3600, work, "tick"))
    made._tasks = [loop_task]
    await started.wait()
    stopping = asyncio.create_task(made.stop())
    done, _ = await asyncio.wait([stopping], timeout=10)
    assert stopping in done, "stop() waited for the loop's hour-long sleep"
    assert loop_task.done()


async def test_stop_ends_a_loop_whose_work_swallowed_the_cancellation() -> None:
    import asyncio

    started = asyncio.Event()

    async def work() -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            return  # as a driver that answers "not the leader" when interrupted

    made, _ = scheduler(Lock([]))
    loop_task = asyncio.create_task(made._every(3600, work, "tick"))
    made._tasks = [loop_task]
    await started.wait()
    stopping = asyncio.create_task(made.stop())
    done, _ = await asyncio.wait([stopping], timeout=10)
    assert stopping in done, "stop() waited for the loop's hour-long sleep"


async def test_given_it_lost_the_lock_then_its_in_flight_gauges_go_with_the_store_wide_ones() -> (
    None
):
    # Given a replica that led and exported in-flight counters for a queue and a worker
    made, service = scheduler(Lock([True, False]))

    async def observe() -> None:
        service.metrics.inflight_queue.labels("emails").set(3)
        service.metrics.inflight_worker.labels("w-1").set(2)

    service.observe = observe
    await made._lead_and_tick()
    await made._observe()
    registry = service.metrics.registry
    assert registry.get_sample_value("jq_inflight_jobs", {"queue": "emails"}) == 3
    # When another replica takes the lock
    await made._lead_and_tick()
    await made._observe()
    # Then it exports neither series any more: the new leader's alone are summed
    assert registry.get_sample_value("jq_inflight_jobs", {"queue": "emails"}) is None
    assert registry.get_sample_value("jq_worker_inflight_jobs", {"worker": "w-1"}) is None
