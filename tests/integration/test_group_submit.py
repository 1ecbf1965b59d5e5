"""Group commit: concurrent single submits share a store transaction, each answered alone."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from jobq.client import AsyncClient
from jobq.core.clock import FixedClock
from jobq.core.errors import FailedPrecondition
from jobq.core.model import NewJob, QueueConfig, SubmitResult
from jobq.server.group_submit import GroupSubmit
from jobq.store.base import Store
from jobq.store.sqlite import SqliteStore
from tests.auth_keys import OWNER_KEY
from tests.contract.helpers import new_job
from tests.integration.inprocess import running_server

CLOCK = FixedClock(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    made = SqliteStore(tmp_path / "jobq.db", QueueConfig(name="default"), rng=random.Random(1))
    await made.migrate()
    await made.open()
    try:
        yield made
    finally:
        await made.close()


class GatedStore:
    """The real store's submit, held at a gate, with the batches it was given."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.batches: list[int] = []
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()

    async def submit(self, jobs: Sequence[NewJob], now: dt.datetime) -> list[SubmitResult]:
        self.batches.append(len(jobs))
        self.entered.set()
        await self.gate.wait()
        return await self.store.jobs.submit(jobs, now)


async def written(gated: GatedStore, writes: int) -> None:
    while len(gated.batches) < writes:
        gated.entered.clear()
        await gated.entered.wait()


async def test_submits_arriving_during_a_write_share_the_next_one(store: Store) -> None:
    # Given two writes in flight, held at the gate
    gated = GatedStore(store)
    group = GroupSubmit(gated.submit, max_batch=100, in_flight=2)
    jobs = [new_job(CLOCK, payload=str(i)) for i in range(30)]
    calls = []
    for job in jobs[:2]:
        calls.append(asyncio.create_task(group.submit(job, CLOCK.now())))
        await written(gated, len(calls))
    assert gated.batches == [1, 1]
    calls += [asyncio.create_task(group.submit(job, CLOCK.now())) for job in jobs[2:]]
    # When they commit, the 28 that gathered meanwhile go in one write
    gated.gate.set()
    results = await asyncio.gather(*calls)
    assert gated.batches == [1, 1, 28]
    # Then each caller has its own job, stored
    assert [r.job.id for r in results] == [j.id for j in jobs]
    assert all(r.created for r in results)
    for job in jobs:
        stored = await store.jobs.get(job.id)
        assert stored is not None and stored.payload == job.payload


async def test_by_default_one_write_is_in_flight_and_the_rest_wait_for_the_next(
    store: Store,
) -> None:
    # Given the group as the server builds it, its first write held at the gate
    gated = GatedStore(store)
    group = GroupSubmit(gated.submit, max_batch=100)
    jobs = [new_job(CLOCK, payload=str(i)) for i in range(30)]
    calls = [asyncio.create_task(group.submit(jobs[0], CLOCK.now()))]
    await written(gated, 1)
    # When 29 more arrive meanwhile
    calls += [asyncio.create_task(group.submit(job, CLOCK.now())) for job in jobs[1:]]
    for _ in range(5):
        await asyncio.sleep(0)
    # Then no second write starts beside it (it would take only what gathered so far)
    assert gated.batches == [1]
    gated.gate.set()
    results = await asyncio.gather(*calls)
    assert gated.batches == [1, 29]
    assert [r.job.id for r in results] == [j.id for j in jobs]


async def test_a_batch_the_store_refuses_is_written_job_by_job(store: Store) -> None:
    # Given a store that refuses a batch holding one particular job
    bad = new_job(CLOCK, payload='"bad"')

    async def refusing(jobs: Sequence[NewJob], now: dt.datetime) -> list[SubmitResult]:
        if any(j.id == bad.id for j in jobs):
            raise FailedPrecondition("refused")
        return await store.jobs.submit(jobs, now)

    group = GroupSubmit(refusing, max_batch=100, in_flight=1)
    good = [new_job(CLOCK, payload=str(i)) for i in range(5)]
    calls = [asyncio.create_task(group.submit(j, CLOCK.now())) for j in [good[0], bad, *good[1:]]]
    results = await asyncio.gather(*calls, return_exceptions=True)
    # Then only the refused job's caller gets the error; the others' jobs are stored
    assert isinstance(results[1], FailedPrecondition)
    assert all(isinstance(r, SubmitResult) and r.created for i, r in enumerate(results) if i != 1)
    assert await store.jobs.get(bad.id) is None
    for job in good:
        assert await store.jobs.get(job.id) is not None


async def test_concurrent_unary_submits_each_get_their_own_job(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server:
        address = f"127.0.0.1:{server.grpc_port}"
        clients = [AsyncClient(address, token=OWNER_KEY) for _ in range(8)]
        try:
            calls = [
                c.submit("echo", {"n": n, "i": i}) for i in range(5) for n, c in enumerate(clients)
            ]
            jobs = await asyncio.gather(*calls)
            expected = [{"n": n, "i": i} for i in range(5) for n in range(8)]
            assert [j.payload for j in jobs] == expected
            assert len({j.id for j in jobs}) == 40
            for job in jobs:
                assert (await clients[0].get(job.id)).payload == job.payload
            (stats,) = await clients[0].queue_stats("default")
            assert stats.by_state["queued"] == 40
        finally:
            for c in clients:
                await c.aclose()
