"""Tasks the end-to-end tests need beyond the examples."""

from __future__ import annotations

import asyncio
import os
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


@task("timed")
async def timed(payload: Any, ctx: JobContext) -> None:
    """Records its run as "start" and "end" lines (job, attempt, pid, concurrency key, time)
    in the file JQ_TEST_EXECUTIONS names: a run whose worker is killed has a start only.
    One write() with O_APPEND per line: lines of several workers never interleave."""

    def record(what: str) -> None:
        fields = (what, ctx.job_id, ctx.attempt, os.getpid(), payload["key"], time.time())
        line = " ".join(map(str, fields)) + "\n"
        fd = os.open(os.environ["JQ_TEST_EXECUTIONS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)

    record("start")
    await asyncio.sleep(payload["ms"] / 1000)
    record("end")
