"""Example tasks, loaded by `make run`: echo, sleep, flaky, progress, fail."""

from __future__ import annotations

import asyncio
from typing import Any

from jobq.worker.context import JobContext
from jobq.worker.task import PermanentError, task


@task("echo")
async def echo(payload: Any) -> Any:
    """Returns its payload."""
    return payload


@task("sleep")
async def sleep(payload: Any, ctx: JobContext) -> dict[str, float]:
    """Sleeps `{"seconds": n}` (or a bare number), stopping early when cancelled."""
    seconds = float(payload.get("seconds", 1) if isinstance(payload, dict) else payload or 1)
    waited = 0.0
    while waited < seconds and not ctx.cancelled:
        step = min(0.05, seconds - waited)
        await asyncio.sleep(step)
        waited += step
    return {"slept": round(waited, 3)}


@task("flaky")
def flaky(payload: Any, ctx: JobContext) -> dict[str, int]:
    """Fails its first `{"failures": n}` attempts, then succeeds."""
    failures = int(payload.get("failures", 1)) if isinstance(payload, dict) else 1
    if ctx.attempt <= failures:
        raise RuntimeError(f"flaky: failing attempt {ctx.attempt} of the first {failures}")
    return {"succeeded_on_attempt": ctx.attempt}


@task("progress")
async def progress(payload: Any, ctx: JobContext) -> dict[str, int]:
    """Reports progress in `{"steps": n}` steps of `{"step_seconds": s}` each."""
    options = payload if isinstance(payload, dict) else {}
    steps = int(options.get("steps", 5))
    pause = float(options.get("step_seconds", 0.2))
    for step in range(1, steps + 1):
        if ctx.cancelled:
            break
        await asyncio.sleep(pause)
        ctx.progress(step / steps, f"step {step} of {steps}")
    return {"steps": steps}


@task("fail")
def fail(payload: Any) -> None:
    """Always fails: `{"permanent": true}` dead-letters at once, else retries until dead."""
    if isinstance(payload, dict) and payload.get("permanent"):
        raise PermanentError("fail: asked to fail permanently")
    raise RuntimeError("fail: asked to fail")
