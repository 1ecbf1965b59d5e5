"""What a running task sees of its job: ids, attempt, progress reporting, cancellation."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

# Fetches (key, result JSON text) of a workflow node's succeeded parents (ADR 0016).
ParentFetch = Callable[[], Awaitable[list[tuple[str, str]]]]


async def _no_parents() -> list[tuple[str, str]]:
    return []


class JobContext:
    def __init__(
        self,
        job_id: str,
        job_type: str,
        queue: str,
        attempt: int,
        correlation_id: str,
        on_progress: Callable[[float, str], None],
        loop: asyncio.AbstractEventLoop | None,
        fetch_parents: ParentFetch | None = None,
    ) -> None:
        """`loop`: the worker's, to which a sync task's thread hands its progress; None: call
        `on_progress` wherever progress() is called (a test's context)."""
        self.job_id = job_id
        self.type = job_type
        self.queue = queue
        self.attempt = attempt
        self.correlation_id = correlation_id
        self._on_progress = on_progress
        self._loop = loop
        self._fetch_parents = fetch_parents or _no_parents
        # Set once, on the event loop; a sync task's thread only reads it (an attribute read
        # is atomic), so no lock or threading.Event is needed per job.
        self._cancelled = False
        self.reported: list[tuple[float, str]] = []  # filled only by for_test()'s contexts

    @classmethod
    def for_test(
        cls,
        *,
        job_id: str = "test-job",
        type: str = "test",
        queue: str = "default",
        attempt: int = 1,
        correlation_id: str = "test",
    ) -> JobContext:
        """A context for calling a task directly in a test: `ctx.reported` lists each
        progress() call as (fraction, message), and `ctx.cancel()` asks the task to stop."""
        reported: list[tuple[float, str]] = []
        ctx = cls(
            job_id, type, queue, attempt, correlation_id, lambda f, m: reported.append((f, m)), None
        )
        ctx.reported = reported
        return ctx

    async def parent_results(self) -> dict[str, Any]:
        """A workflow node's parents' results by their keys, as Python values (each parent
        succeeded before this job could run); {} for a job of no workflow. Asked of the
        server when called, so a job that does not need them costs nothing."""
        return {key: json.loads(result) for key, result in await self._fetch_parents()}

    def parent_results_sync(self) -> dict[str, Any]:
        """parent_results() for a plain (sync) task, which runs in a thread."""
        if self._loop is None:
            return asyncio.run(self.parent_results())
        return asyncio.run_coroutine_threadsafe(self.parent_results(), self._loop).result()

    def cancel(self) -> None:
        """Request cancellation, as the server does on a worker's heartbeat (for tests)."""
        self._cancelled = True

    @property
    def cancelled(self) -> bool:
        """True once cancellation was requested; a task should stop soon after."""
        return self._cancelled

    def progress(self, fraction: float, message: str = "") -> None:
        """Report progress (0..1). Safe from async tasks and from sync tasks' threads."""
        fraction = min(1.0, max(0.0, float(fraction)))
        if self._loop is None:
            self._on_progress(fraction, message)
            return
        try:
            on_loop = asyncio.get_running_loop() is self._loop
        except RuntimeError:  # a sync task's thread has no running loop
            on_loop = False
        if on_loop:
            self._on_progress(fraction, message)
        else:
            self._loop.call_soon_threadsafe(self._on_progress, fraction, message)

    def _cancel(self) -> None:
        self._cancelled = True
