"""The task of the fault tests: it records every execution before doing a little work.

The record is written when an execution starts, so an attempt whose worker is killed
mid-run still counts: a duplicate is any second start, finished or not.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from jobq import JobContext, task

# Where executions are recorded; the test sets it on each worker it starts.
LOG_VARIABLE = "JQ_TEST_EXECUTIONS"


@task("faults.record", queue="faults")
async def record(payload: Any, ctx: JobContext) -> None:
    # One write() of one short line with O_APPEND: lines from several workers never
    # interleave, and a line is on disk (in the page cache) before the work starts.
    line = f"{ctx.job_id} {ctx.attempt} {os.getpid()} {time.time():.3f}\n".encode()
    fd = os.open(os.environ[LOG_VARIABLE], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    await asyncio.sleep(payload["ms"] / 1000)
