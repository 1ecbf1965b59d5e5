"""Tasks the end-to-end tests need beyond the examples."""

from __future__ import annotations

import time
from typing import Any

from jobq import JobContext, task


@task("block")
def block(payload: Any, ctx: JobContext) -> dict[str, Any]:
    """A sync task that runs `seconds` without looking at cancellation."""
    time.sleep(float(payload.get("seconds", 1)))
    return {"attempt": ctx.attempt}
