"""The benchmark's tasks: they do nothing, so the numbers measure the queue."""

import time
from typing import Any

from jobq import task


@task("noop", queue="bench")
async def noop(payload: Any) -> None:
    return None


@task("stamp", queue="bench")
async def stamp(payload: Any) -> float:
    """When the task began, on this machine's clock: submit->start as the client sees it."""
    return time.time()
