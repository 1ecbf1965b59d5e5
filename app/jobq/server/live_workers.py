"""The live workers as last read, for Submit's routing and "no live worker serves" warning.

Read at most once a second (ADR 0018), and once for everybody: when the last read goes
stale, the submits arriving meanwhile all wait for one read rather than each starting its
own. At 50 concurrent clients each expiry otherwise sent every submit in flight to read the
whole workers table, 4.5 % of the server's CPU (ADR 0026).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable

from jobq.core.clock import Clock
from jobq.core.model import WorkerInfo

# How long Submit's "no live worker serves" check trusts its last read of the workers.
LIVE_WORKERS_FOR = dt.timedelta(seconds=1)

Read = Callable[[dt.datetime], Awaitable[list[WorkerInfo]]]


class LiveWorkers:
    def __init__(self, read: Read, clock: Clock) -> None:
        self._read = read
        self._clock = clock
        self._seen: tuple[dt.datetime, list[WorkerInfo]] | None = None
        self._reading: asyncio.Task[list[WorkerInfo]] | None = None
        # Bumped by forget(): a read begun before it neither answers later callers nor is
        # kept, so a worker that registered here is seen by the next submit.
        self._generation = 0

    def forget(self) -> None:
        """A worker registered, left or drained through this server: read again."""
        self._seen = None
        self._reading = None
        self._generation += 1

    async def get(self) -> list[WorkerInfo]:
        now = self._clock.now()
        seen = self._seen
        if seen is not None and dt.timedelta(0) <= now - seen[0] < LIVE_WORKERS_FOR:
            return seen[1]
        if self._reading is None:
            self._reading = asyncio.get_running_loop().create_task(
                self._read_once(now, self._generation)
            )
            self._reading.add_done_callback(_retrieved)
        # Shielded: one caller cancelled (its deadline, its client gone) must not cancel
        # the read the others wait for.
        return await asyncio.shield(self._reading)

    async def _read_once(self, now: dt.datetime, generation: int) -> list[WorkerInfo]:
        try:
            live = await self._read(now)
            if generation == self._generation:
                self._seen = (now, live)
            return live
        finally:
            if generation == self._generation:
                self._reading = None


def _retrieved(task: asyncio.Task[list[WorkerInfo]]) -> None:
    # Each waiter gets the read's error; this only keeps asyncio from logging it when every
    # waiter was cancelled meanwhile.
    if not task.cancelled():
        task.exception()
