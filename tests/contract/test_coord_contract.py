"""The coordination contract: one suite over the in-process adapter, a standalone Redis and
a 3-master Redis cluster (a script touching keys of two slots fails there: CROSSSLOT)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from jobq.coord.base import Coordinator, CoordUnavailable
from jobq.coord.memory import MemoryCoordinator
from jobq.coord.redis import RedisCoordinator
from jobq.core.limits import RateBucket

BACKENDS = ("memory", "redis", "redis-cluster")


@pytest.fixture(params=BACKENDS)
async def coord(request: pytest.FixtureRequest) -> AsyncIterator[Coordinator]:
    made: Coordinator
    if request.param == "memory":
        made = MemoryCoordinator()
    else:
        harness = request.getfixturevalue(
            "redis_server" if request.param == "redis" else "redis_cluster"
        )
        harness.flush()
        made = RedisCoordinator.build(harness.url)
    try:
        yield made
    finally:
        await made.close()


async def test_rate_grants_the_burst_of_a_batch_and_charges_only_what_it_granted(coord):
    # Given a key allowing one job per 1000 s with a burst of 3
    first = await coord.rate_acquire("queue:t/q", 0.001, 3, 5)
    # Then a batch of 5 gets 3, and the next asks get none, with a long wait named
    assert (first.asked, first.granted) == (5, 3)
    again = await coord.rate_acquire("queue:t/q", 0.001, 3, 1)
    assert again.granted == 0 and 900 < again.retry_after <= 1000
    # And another key has its own budget
    assert (await coord.rate_acquire("key:t/customer-1", 0.001, 3, 2)).granted == 2


async def test_rate_refills_at_its_rate(coord):
    # 2 per second: the second call comes long before the next half-second interval, even on a
    # loaded machine (at 50/s a 20 ms stall between two awaits refilled the bucket and flaked)
    assert (await coord.rate_acquire("k", 2.0, 1, 1)).granted == 1
    assert (await coord.rate_acquire("k", 2.0, 1, 1)).granted == 0
    await asyncio.sleep(0.6)  # more than one interval later, one fits again (burst 1)
    assert (await coord.rate_acquire("k", 2.0, 1, 3)).granted == 1


async def test_rate_is_atomic_under_concurrent_batches(coord):
    # Given 20 callers racing for batches of 5 under a burst of 30
    decisions = await asyncio.gather(*(coord.rate_acquire("race", 0.001, 30, 5) for _ in range(20)))
    # Then exactly the burst is granted, never more
    assert sum(d.granted for d in decisions) == 30


SLOW = 0.001  # one job per 1000 s: only the burst is ever admitted within a test


async def test_rate_admit_decides_a_whole_batch_over_queue_and_key_buckets(coord):
    # Given a queue bucket with burst 4 and two key buckets with burst 2 each
    buckets = [
        RateBucket("q:t/q", SLOW, 4, "rate"),
        RateBucket("k:t/q:a", SLOW, 2, "key_rate"),
        RateBucket("k:t/q:b", SLOW, 2, "key_rate"),
    ]
    # When six candidates ask: a a a b b b (each draws from the queue's and its key's)
    wants = [(0, 1), (0, 1), (0, 1), (0, 2), (0, 2), (0, 2)]
    answer = await coord.rate_admit(buckets, wants, 10, "replica-1", 30)
    # Then each key gets its burst: the third "a" is refused by its key's bucket, the third
    # "b" by the queue's (its 4 are gone), and a refused one charged nothing
    assert answer.admitted == (0, 1, 3, 4)
    assert answer.refused_by == {2: 1, 5: 0}
    assert answer.replicas == 1
    # And only admitted ones were charged: the queue bucket had exactly 4, all used now
    again = await coord.rate_admit(buckets[:1], [(0,)], 10, "replica-1", 30)
    assert again.admitted == () and again.refused_by == {0: 0}


async def test_rate_admit_stops_at_the_batch_limit_without_charging_the_rest(coord):
    buckets = [RateBucket("q:t/full", SLOW, 5, "rate")]
    answer = await coord.rate_admit(buckets, [(0,)] * 4, 2, "r", 30)
    # The batch holds 2: the other two are refused by the limit (-1), not by the bucket
    assert answer.admitted == (0, 1) and answer.refused_by == {2: -1, 3: -1}
    assert (await coord.rate_admit(buckets, [(0,)] * 5, 5, "r", 30)).admitted == (0, 1, 2)


async def test_rate_admit_lets_candidates_without_buckets_through(coord):
    answer = await coord.rate_admit([], [(), ()], 5, "r", 30)
    assert answer.admitted == (0, 1)


async def test_rate_admit_is_atomic_across_racing_batches_and_counts_replicas(coord):
    bucket = [RateBucket("q:t/race", SLOW, 25, "rate")]
    # Given 10 replicas racing with batches of 5 against a burst of 25
    answers = await asyncio.gather(
        *(coord.rate_admit(bucket, [(0,)] * 5, 5, f"replica-{i}", 30) for i in range(10))
    )
    # Then exactly the burst is admitted across them, and every replica was counted
    assert sum(len(a.admitted) for a in answers) == 25
    assert max(a.replicas for a in answers) == 10


async def test_slots_hold_a_limit_and_come_back_on_release(coord):
    grant = await coord.slots_acquire("cap", 2, ["j1:1", "j2:1", "j3:1"], 30)
    assert grant.granted == ("j1:1", "j2:1") and grant.in_use == 2
    # A holder asking again keeps its slot; a new one still waits
    assert (await coord.slots_acquire("cap", 2, ["j1:1", "j3:1"], 30)).granted == ("j1:1",)
    assert await coord.slots_release("cap", ["j1:1", "nobody"]) == 1
    assert (await coord.slots_acquire("cap", 2, ["j3:1"], 30)).granted == ("j3:1",)
    assert await coord.slots_in_use("cap") == 2


async def test_slots_of_a_dead_holder_are_reclaimed_at_expiry(coord):
    # Given a cap of 1 held by a lease that nobody releases (its worker died)
    assert (await coord.slots_acquire("one", 1, ["dead:1"], 0.3)).granted == ("dead:1",)
    assert (await coord.slots_acquire("one", 1, ["next:1"], 30)).granted == ()
    # When its expiry passes
    await asyncio.sleep(0.5)
    # Then the next lease gets the slot: a crash never leaks one
    assert await coord.slots_in_use("one") == 0
    assert (await coord.slots_acquire("one", 1, ["next:1"], 30)).granted == ("next:1",)


async def test_slots_renew_keeps_a_live_holder(coord):
    await coord.slots_acquire("renew", 1, ["live:1"], 0.4)
    for _ in range(3):
        await asyncio.sleep(0.2)
        assert await coord.slots_renew("renew", ["live:1", "gone:1"], 0.4) == 1
    assert await coord.slots_in_use("renew") == 1


async def test_slots_never_exceed_the_limit_under_concurrency(coord):
    grants = await asyncio.gather(
        *(coord.slots_acquire("race", 5, [f"j{i}:1"], 30) for i in range(20))
    )
    assert sum(len(g.granted) for g in grants) == 5
    assert await coord.slots_in_use("race") == 5


async def test_slots_without_a_limit_count_in_flight_leases(coord):
    grant = await coord.slots_acquire("inflight", 0, [f"j{i}:1" for i in range(7)], 30)
    assert len(grant.granted) == 7 and grant.in_use == 7
    await coord.slots_release("inflight", ["j0:1", "j1:1"])
    assert await coord.slots_in_use("inflight") == 5


async def test_presence_expires_unless_marked_again(coord):
    await coord.presence_mark("w1", 0.3)
    await coord.presence_mark("w2", 30)
    assert await coord.presence_live() == {"w1", "w2"}
    await asyncio.sleep(0.5)
    assert await coord.presence_live() == {"w2"}
    await coord.presence_clear("w2")
    assert await coord.presence_live() == set()


async def test_cache_put_after_an_invalidation_keeps_the_stale_copy_out(coord):
    first = await coord.cache_get("job:1")
    assert first.value is None
    await coord.cache_put("job:1", b"v1", 30, first.version)
    assert (await coord.cache_get("job:1")).value == b"v1"
    # When a reader reads (a miss), the job changes, and the reader puts what it read before
    # the change
    await coord.cache_invalidate(["job:1", "job:2"])
    before = await coord.cache_get("job:1")
    await coord.cache_invalidate(["job:1"])
    await coord.cache_put("job:1", b"stale", 30, before.version)
    # Then nobody reads the stale copy from the cache
    assert (await coord.cache_get("job:1")).value is None


async def test_the_first_fill_after_an_invalidation_serves_every_later_reader(coord):
    # Given a cached job that then changed (invalidated)
    await coord.cache_put("job:1", b"v1", 30, (await coord.cache_get("job:1")).version)
    await coord.cache_invalidate(["job:1"])
    # When the first reader after the change misses and fills the cache
    miss = await coord.cache_get("job:1")
    assert miss.value is None
    await coord.cache_put("job:1", b"v2", 30, miss.version)
    # Then the next readers read it from the cache, at once: the change is filled once,
    # not once per reader until the invalidation ages out
    assert [(await coord.cache_get("job:1")).value for _ in range(3)] == [b"v2"] * 3
    # And a second reader's fill from the same version changes nothing it should not
    await coord.cache_put("job:1", b"v2", 30, miss.version)
    assert (await coord.cache_get("job:1")).value == b"v2"


async def test_published_job_changes_reach_a_subscriber(coord):
    seen: asyncio.Queue[list[str]] = asyncio.Queue()
    task = asyncio.create_task(coord.subscribe_jobs_changed(seen.put_nowait))
    try:
        # The subscription starts asynchronously: publish until it is heard.
        for _ in range(50):
            await coord.publish_jobs_changed(["a", "b"])
            try:
                assert await asyncio.wait_for(seen.get(), 0.2) == ["a", "b"]
                break
            except TimeoutError:
                continue
        else:
            pytest.fail("no published change reached the subscriber")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_cluster_client_closing_its_connections_under_calls_fails_them_as_unavailable(
    redis_cluster,
) -> None:
    # Given calls in flight on a RedisCluster client
    coord = RedisCoordinator.build(redis_cluster.url)
    surprises: list[BaseException] = []
    answered = 0
    until = time.monotonic() + 1.0

    async def caller(n: int) -> None:
        nonlocal answered
        while time.monotonic() < until:
            try:
                await coord.cache_get(f"job:{n}")
                answered += 1
            except CoordUnavailable:
                pass
            except Exception as exc:  # what the guard would not catch: INTERNAL to a client
                surprises.append(exc)

    # When the client closes every node's connections again and again, as redis-py's
    # RedisCluster does itself on ClusterDownError during a failover (connections other
    # tasks are using included)
    async def failing_over() -> None:
        while time.monotonic() < until:
            # What RedisCluster.aclose() does first: every node drops its connections.
            await asyncio.gather(
                *(n.disconnect() for n in coord._client.get_nodes()), return_exceptions=True
            )
            await asyncio.sleep(0.005)

    try:
        await asyncio.gather(failing_over(), *(caller(n) for n in range(20)))
    finally:
        await coord.close()
    # Then each call either answered or said "unavailable" (the guard's fallback), never
    # the AttributeError / RuntimeError the torn connections raise inside redis-py
    assert surprises == []
    assert answered > 0


async def test_one_invalidation_of_a_batch_reaches_every_job_of_it(coord):
    # Given 200 cached jobs, whose keys fall in every bucket of the cache
    keys = [f"job:{i}" for i in range(200)]
    for key in keys:
        await coord.cache_put(key, b"old", 30, (await coord.cache_get(key)).version)
    read_before = {key: (await coord.cache_get(key)).version for key in keys[:150]}
    # When one call invalidates the 150 of them that a batch changed
    await coord.cache_invalidate(keys[:150])
    # Then each of those is gone, and a fill from a read before the change is refused
    for key in keys[:150]:
        assert (await coord.cache_get(key)).value is None
        await coord.cache_put(key, b"stale", 30, read_before[key])
        assert (await coord.cache_get(key)).value is None
    # And the other 50 are still cached
    assert [(await coord.cache_get(k)).value for k in keys[150:]] == [b"old"] * 50
