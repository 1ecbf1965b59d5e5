"""Tasks the end-to-end tests need beyond the examples."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from jobq import JobContext, task


@task("block")
def block(payload: Any, ctx: JobContext) -> dict[str, Any]:
    """A sync task that runs `seconds` without looking at cancellation.

    With `started`, it first creates that file: a test waits on it to know the task runs in
    the worker, not only that the server handed the job out.
    """
    if "started" in payload:
        Path(payload["started"]).touch()
    time.sleep(float(payload.get("seconds", 1)))
    return {"attempt": ctx.attempt}


@task("slow_first")
async def slow_first(payload: Any, ctx: JobContext) -> int:
    """Its first attempt runs a minute (long enough to be killed in); later ones return."""
    if ctx.attempt == 1:
        await asyncio.sleep(60)
    return ctx.attempt
