"""Tasks for the replica tests: a no-op to measure the queue itself, and one that hangs."""

from __future__ import annotations

import asyncio
from typing import Any

from jobq import JobContext, task


@task("replicas.noop", queue="replicas")
async def noop(payload: Any) -> None:
    return None


@task("replicas.hang_first", queue="takeover")
async def hang_first(payload: Any, ctx: JobContext) -> dict[str, int]:
    """The first attempt runs until its worker is killed; a later one returns at once."""
    if ctx.attempt == 1:
        await asyncio.sleep(3600)
    return {"attempt": ctx.attempt}


@task("replicas.slow", queue="overlap")
async def slow(payload: Any, ctx: JobContext) -> None:
    """Runs 2.5 s, longer than its schedule's 1 s interval, unless cancelled first."""
    for _ in range(25):
        if ctx.cancelled:
            return
        await asyncio.sleep(0.1)
