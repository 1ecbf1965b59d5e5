"""In-process wake-ups: long-polling leases and job watchers wait here instead of polling fast.

With several server replicas a change made by another replica is not seen here; waiters
therefore also wake on a timeout and look again (the PostgreSQL backend adds LISTEN/NOTIFY).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable


class Notifier:
    def __init__(self) -> None:
        self._work = asyncio.Event()
        self._jobs: dict[str, asyncio.Event] = {}

    def work_available(self) -> None:
        """Wake every lease waiting now; later waiters get a fresh event."""
        self._work.set()
        self._work = asyncio.Event()

    # The long-poll waits return quietly at their deadline, so callers pass it rather than
    # catching a cancellation.
    async def wait_for_work(self, timeout: float) -> None:  # noqa: ASYNC109
        event = self._work
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)

    def jobs_changed(self, job_ids: Iterable[str]) -> None:
        for job_id in job_ids:
            event = self._jobs.pop(job_id, None)
            if event is not None:
                event.set()

    async def wait_for_job(self, job_id: str, timeout: float) -> None:  # noqa: ASYNC109
        event = self._jobs.setdefault(job_id, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)
