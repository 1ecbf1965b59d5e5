"""Singleton work (promotion, reaping, expiry, retention) runs only on the leader replica."""

from __future__ import annotations

import asyncio
import datetime as dt
from types import SimpleNamespace
from typing import Any, cast

import pytest

from jobq.server.scheduler import Scheduler
from jobq.server.service import JobqService

from ..conftest import T0


class Replica:
    """Just what the scheduler touches of a JobqService, counting the calls."""

    def __init__(self, leader: bool, ticks: int = 10) -> None:
        self.is_leader = leader
        self.ticks = ticks
        self.ticked_enough = asyncio.Event()
        self.calls = {"try_acquire": 0, "tick": 0, "delete_finished": 0, "observe": 0}
        self.settings = SimpleNamespace(
            scheduler_interval=dt.timedelta(milliseconds=1),
            retention_interval=dt.timedelta(milliseconds=1),
            scheduler_batch=10,
        )
        self.clock = SimpleNamespace(now=lambda: T0)
        self.store = SimpleNamespace(
            leader=SimpleNamespace(try_acquire=self.try_acquire),
            jobs=SimpleNamespace(delete_finished=self.delete_finished),
        )

    def _count(self, call: str) -> None:
        self.calls[call] += 1
        if max(self.calls["try_acquire"], self.calls["tick"]) >= self.ticks:
            self.ticked_enough.set()

    async def try_acquire(self) -> bool:
        self._count("try_acquire")
        return self.is_leader

    async def tick(self) -> None:
        self._count("tick")

    async def observe(self) -> None:
        self.calls["observe"] += 1

    async def delete_finished(self, now: dt.datetime, limit: int) -> int:
        self.calls["delete_finished"] += 1
        return 0


async def run_for_a_few_ticks(replica: Replica) -> None:
    scheduler = Scheduler(cast(JobqService, cast(Any, replica)))
    scheduler.start()
    try:
        await replica.ticked_enough.wait()
    finally:
        await scheduler.stop()


@pytest.mark.parametrize("leader", [False, True], ids=["follower", "leader"])
async def test_given_a_replica_when_the_scheduler_runs_then_only_the_leader_does_singleton_work(
    leader: bool,
) -> None:
    replica = Replica(leader)
    await run_for_a_few_ticks(replica)
    singleton = replica.calls["tick"] + replica.calls["delete_finished"]
    assert (singleton > 0) is leader, replica.calls
    assert replica.calls["observe"] >= 1, "every replica keeps its gauges fresh"
