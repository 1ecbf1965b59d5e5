"""The server's background loops: promote due jobs, reap expired leases, expire, retain.

Singleton work: on the embedded store there is one server; the PostgreSQL backend runs
this under a leader lock so that one replica at a time does it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from jobq.core.errors import StoreUnavailable
from jobq.server.service import JobqService

log = logging.getLogger("jobq.scheduler")

OBSERVE_EVERY = 5.0


class Scheduler:
    def __init__(self, service: JobqService) -> None:
        self._service = service
        self._settings = service.settings
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        # Promotion, reaping, expiry and retention are singleton work; gauges are read by
        # every replica so that each one's /metrics is whole.
        self._tasks = [
            asyncio.create_task(
                self._every(
                    self._settings.scheduler_interval.total_seconds(),
                    self._as_leader(self._service.tick),
                    "tick",
                )
            ),
            asyncio.create_task(self._every(OBSERVE_EVERY, self._service.observe, "observe")),
            asyncio.create_task(
                self._every(
                    self._settings.retention_interval.total_seconds(),
                    self._as_leader(self._retain),
                    "retention",
                )
            ),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _every(self, seconds: float, work: object, name: str) -> None:
        assert callable(work)
        while True:
            try:
                await work()
            except StoreUnavailable as exc:
                log.warning("scheduler %s: store unavailable: %s", name, exc)
            except Exception:
                log.exception("scheduler %s failed", name)
            await asyncio.sleep(seconds)

    def _as_leader(self, work: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        """Run `work` only on the replica holding the store's leader lock."""

        async def gated() -> None:
            if await self._service.store.leader.try_acquire():
                await work()

        return gated

    async def _retain(self) -> None:
        """Delete finished jobs past retention in small batches, yielding between them."""
        batch = self._settings.scheduler_batch
        while (  # noqa: ASYNC110 - the sleep spaces batches out; it waits for nothing
            await self._service.store.jobs.delete_finished(self._service.clock.now(), batch)
            >= batch
        ):
            await asyncio.sleep(0.05)
