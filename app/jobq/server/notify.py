"""In-process wake-ups: long-polling leases and job watchers wait here instead of polling fast.

With several server replicas a change made by another replica is not seen here; waiters
therefore also wake on a timeout and look again (the PostgreSQL backend adds LISTEN/NOTIFY).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Iterable, Mapping


class _AnyQueue(frozenset[str]):
    """A waiter that leases from every queue: it takes any queue's wake-up."""

    def __contains__(self, item: object) -> bool:
        return True


ANY_QUEUE = _AnyQueue()


class Notifier:
    def __init__(self) -> None:
        # Waiting lease calls, oldest first, each with the queues it leases from: a
        # wake-up goes to the one that waited longest and can take the work.
        self._waiters: collections.deque[tuple[frozenset[str], asyncio.Future[None]]] = (
            collections.deque()
        )
        self._jobs: dict[str, asyncio.Event] = {}

    def work_available(self, jobs: Mapping[str, int] | None = None) -> None:
        """Wake one waiting lease per new job, among those leasing from its queue (`jobs`:
        queue -> how many); None wakes every one, for a change whose work is not counted
        (a resumed queue, a replay, another replica's NOTIFY).

        Waking every waiter for one job sends all but one to the store for nothing; under
        load that is most of the lease calls."""
        left = None if jobs is None else {q: n for q, n in jobs.items() if n > 0}
        if left == {}:
            return
        for entry in list(self._waiters):
            queues, waiter = entry
            if waiter.done():
                continue
            if left is not None:
                wanted = next((q for q in left if q in queues), None)
                if wanted is None:
                    continue
                left[wanted] -= 1
                if not left[wanted]:
                    del left[wanted]
            waiter.set_result(None)
            self._waiters.remove(entry)
            if left == {}:
                return

    # The long-poll waits return quietly at their deadline, so callers pass it rather than
    # catching a cancellation.
    async def wait_for_work(self, timeout: float, queues: Iterable[str] = ()) -> None:  # noqa: ASYNC109
        """Until work is announced on one of `queues` (any queue when empty) or timeout."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (frozenset(queues) or ANY_QUEUE, waiter)
        self._waiters.append(entry)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter, timeout)
        finally:
            if not waiter.done():
                waiter.cancel()
            with contextlib.suppress(ValueError):
                self._waiters.remove(entry)

    def jobs_changed(self, job_ids: Iterable[str]) -> None:
        for job_id in job_ids:
            event = self._jobs.pop(job_id, None)
            if event is not None:
                event.set()

    async def wait_for_job(self, job_id: str, timeout: float) -> None:  # noqa: ASYNC109
        event = self._jobs.setdefault(job_id, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)
