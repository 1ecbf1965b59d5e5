"""What needs a PostgreSQL session: LISTEN for new work, and the leader lock."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from jobq.core.clock import FixedClock
from jobq.core.model import QueueConfig
from jobq.store.postgres import PostgresStore

from ..conftest import T0
from ..contract.helpers import new_job

DEFAULTS = QueueConfig(name="default")


async def open_store(url: str) -> PostgresStore:
    store = PostgresStore(url, DEFAULTS, pool_min=1, pool_max=2)
    await store.open()
    return store


@contextlib.asynccontextmanager
async def woken_by_the_others_submit(
    submitter: PostgresStore, listener: PostgresStore
) -> AsyncIterator[None]:
    """Asserts on entry that a submit through `submitter` wakes `listener`'s LISTEN; the body
    runs while it still listens."""
    listening_started, woken = asyncio.Event(), asyncio.Event()

    def on_work() -> None:
        # The first call is the catch-up right after LISTEN starts; the next is the NOTIFY.
        (woken if listening_started.is_set() else listening_started).set()

    listening = asyncio.create_task(listener.listen(on_work))
    try:
        await asyncio.wait_for(listening_started.wait(), 10)
        clock = FixedClock(T0)
        await submitter.jobs.submit([new_job(clock)], clock.now())
        await asyncio.wait_for(woken.wait(), 10)
        yield
    finally:
        listening.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listening


async def test_a_submit_on_one_replica_wakes_the_listeners_of_another(pg_databases) -> None:
    url = pg_databases.create()
    submitter, listener = await open_store(url), await open_store(url)
    try:
        async with woken_by_the_others_submit(submitter, listener):
            pass
    finally:
        await submitter.close()
        await listener.close()


async def test_a_replica_is_not_woken_by_its_own_submit_echo(pg_databases) -> None:
    # Given a replica listening for work, and another replica
    url = pg_databases.create()
    own, other = await open_store(url), await open_store(url)
    calls: list[int] = []
    listening_started, woken = asyncio.Event(), asyncio.Event()

    def on_work() -> None:
        calls.append(1)
        (woken if listening_started.is_set() else listening_started).set()

    listening = asyncio.create_task(own.listen(on_work))
    try:
        await asyncio.wait_for(listening_started.wait(), 10)
        clock = FixedClock(T0)
        # When it submits a job itself (it wakes its own lease calls in-process), and
        # then the other replica submits one
        await own.jobs.submit([new_job(clock)], clock.now())
        await other.jobs.submit([new_job(clock)], clock.now())
        await asyncio.wait_for(woken.wait(), 10)
        # Then only the other's NOTIFY reaches the callback. Notifications arrive in
        # commit order, so an echo of its own would have come just before the other's;
        # the pause only gives a wrong extra call the time to show.
        await asyncio.sleep(1.0)
        assert len(calls) == 2  # the catch-up after LISTEN, and the other's submit
    finally:
        listening.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listening
        await own.close()
        await other.close()


async def test_only_one_replica_holds_the_leader_lock_until_it_lets_go(pg_databases) -> None:
    url = pg_databases.create()
    first, second = await open_store(url), await open_store(url)
    try:
        assert await first.leader.try_acquire() is True
        assert await second.leader.try_acquire() is False
        assert await first.leader.try_acquire() is True, "the leader keeps its lock"
        await first.leader.release()
        assert await second.leader.try_acquire() is True
        assert await first.leader.try_acquire() is False
    finally:
        await first.close()
        await second.close()
