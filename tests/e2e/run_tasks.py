"""A task for the `make run` tests: each run of it leaves a line in a file, to count runs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from jobq import JobContext, task


@task("recorded")
def recorded(payload: Any, ctx: JobContext) -> dict[str, Any]:
    """Sleeps `seconds`, then appends `job attempt` to the file `runs`."""
    time.sleep(float(payload.get("seconds", 0)))
    with Path(payload["runs"]).open("a") as runs:
        runs.write(f"{ctx.job_id} {ctx.attempt}\n")
    return {"attempt": ctx.attempt}
