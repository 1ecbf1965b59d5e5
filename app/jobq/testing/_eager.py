"""Eager mode: a task run in the caller's process, as a worker would run it, with no server."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from jobq.core.errors import InvalidArgument
from jobq.worker.context import JobContext
from jobq.worker.task import Task


def _through_json(value: Any, what: str) -> Any:
    # A worker sees the payload the server stored and the server stores the JSON of the
    # result: a value JSON cannot carry must fail here as it would in production.
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(what, f"cannot be sent as JSON: {exc}") from None


async def arun_task(task: Task, payload: Any = None, ctx: JobContext | None = None) -> Any:
    """Run `task` on `payload` now and return its result as the SDK would see it.

    Exceptions the task raises (PermanentError, RetryLater, anything) propagate unchanged.
    A sync task runs in a thread, as on a worker."""
    ctx = ctx or JobContext.for_test(type=task.name, queue=task.queue)
    value = _through_json(payload, "payload")
    args: tuple[Any, ...] = (value, ctx) if task.takes_context else (value,)
    limit = task.timeout.total_seconds() if task.timeout else None
    if task.is_async:
        result = await asyncio.wait_for(task.fn(*args), limit)
    else:
        result = await asyncio.wait_for(asyncio.to_thread(task.fn, *args), limit)
    return _through_json(result, "result")


def run_task(task: Task, payload: Any = None, ctx: JobContext | None = None) -> Any:
    """arun_task from synchronous code (a plain pytest test): no event loop may be running."""
    return asyncio.run(arun_task(task, payload, ctx))
