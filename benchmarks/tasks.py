"""The benchmark's task: does nothing, so the numbers measure the queue."""

from typing import Any

from jobq import task


@task("noop", queue="bench")
async def noop(payload: Any) -> None:
    return None
