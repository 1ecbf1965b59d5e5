"""Wake-ups of waiting lease calls: one per new job, among the waiters that can take it."""

import asyncio

from jobq.server.notify import Notifier

LONG = 30.0  # a waiter not woken stays asleep for the whole test


async def _waiting(notifier: Notifier, *queues: str) -> asyncio.Task[None]:
    task = asyncio.create_task(notifier.wait_for_work(LONG, queues))
    await asyncio.sleep(0)  # let it start waiting
    return task


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_one_new_job_wakes_one_waiter_of_its_queue() -> None:
    notifier = Notifier()
    waiters = [await _waiting(notifier, "emails") for _ in range(3)]
    other = await _waiting(notifier, "reports")

    notifier.work_available({"emails": 1})
    await _settle()

    # Then the longest waiting one is woken, the rest and the other queue's sleep on.
    assert [w.done() for w in waiters] == [True, False, False]
    assert not other.done()
    notifier.work_available({"emails": 5})
    await _settle()
    assert all(w.done() for w in waiters)
    assert not other.done()
    other.cancel()


async def test_uncounted_work_wakes_every_waiter() -> None:
    notifier = Notifier()
    waiters = [await _waiting(notifier, q) for q in ("a", "b", "a")]

    notifier.work_available()
    await _settle()

    assert all(w.done() for w in waiters)


async def test_a_waiter_that_timed_out_takes_no_wake_up_from_another() -> None:
    notifier = Notifier()
    await notifier.wait_for_work(0.0, ["a"])  # gave up at once
    waiter = await _waiting(notifier, "a")

    notifier.work_available({"a": 1})
    await _settle()

    assert waiter.done()
