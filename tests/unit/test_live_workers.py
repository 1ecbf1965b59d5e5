"""Submit's read of the live workers: at most one a second, and one for all concurrent calls."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from jobq.core.clock import FixedClock
from jobq.core.errors import StoreUnavailable
from jobq.core.model import WorkerInfo, WorkerState
from jobq.server.live_workers import LiveWorkers

T0 = dt.datetime(2026, 12, 2, tzinfo=dt.UTC)


def _worker(worker_id: str) -> WorkerInfo:
    return WorkerInfo(worker_id, "host", ("default",), 1, WorkerState.ACTIVE, T0, T0)


class Table:
    """The workers table as the store reads it: each read takes until `release` is set."""

    def __init__(self) -> None:
        self.workers = [_worker("w1")]
        self.reads = 0
        self.release = asyncio.Event()
        self.fail = False

    async def read(self, now: dt.datetime) -> list[WorkerInfo]:
        self.reads += 1
        snapshot = list(self.workers)  # what the statement's snapshot sees
        await self.release.wait()
        if self.fail:
            raise StoreUnavailable("PostgreSQL unavailable")
        return snapshot


async def test_fifty_concurrent_submits_after_expiry_share_one_read() -> None:
    clock, table = FixedClock(T0), Table()
    live = LiveWorkers(table.read, clock)
    table.release.set()
    assert [w.id for w in await live.get()] == ["w1"]
    clock.advance(1.0)  # the last read is stale now
    table.release.clear()
    calls = [asyncio.create_task(live.get()) for _ in range(50)]
    await asyncio.sleep(0)
    table.release.set()
    answers = await asyncio.gather(*calls)
    assert table.reads == 2  # the first, and one for all fifty
    assert all([w.id for w in a] == ["w1"] for a in answers)
    await live.get()
    assert table.reads == 2  # within the second: no read


async def test_a_worker_registered_during_a_read_is_seen_by_the_next_call() -> None:
    clock, table = FixedClock(T0), Table()
    live = LiveWorkers(table.read, clock)
    early = asyncio.create_task(live.get())
    for _ in range(3):  # reading: the table as it was
        await asyncio.sleep(0)
    table.workers.append(_worker("w2"))
    live.forget()  # what RegisterWorker does
    table.release.set()
    assert [w.id for w in await early] == ["w1"]
    assert [w.id for w in await live.get()] == ["w1", "w2"]
    assert table.reads == 2


async def test_a_failed_read_fails_its_callers_and_the_next_call_reads_again() -> None:
    clock, table = FixedClock(T0), Table()
    live = LiveWorkers(table.read, clock)
    table.fail = True
    calls = [asyncio.create_task(live.get()) for _ in range(3)]
    await asyncio.sleep(0)
    table.release.set()
    for call in calls:
        with pytest.raises(StoreUnavailable):
            await call
    table.fail = False
    assert [w.id for w in await live.get()] == ["w1"]
    assert table.reads == 2


async def test_a_cancelled_caller_does_not_cancel_the_read_the_others_wait_for() -> None:
    clock, table = FixedClock(T0), Table()
    live = LiveWorkers(table.read, clock)
    first, second = asyncio.create_task(live.get()), asyncio.create_task(live.get())
    await asyncio.sleep(0)
    first.cancel()
    table.release.set()
    assert [w.id for w in await second] == ["w1"]
    assert first.cancelled()
    assert table.reads == 1
