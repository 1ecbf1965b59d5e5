"""jobq.testing's eager mode and JobContext.for_test: a task tested with no server."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from jobq import InvalidArgument, JobContext, PermanentError, task
from jobq.examples import echo, fail, progress
from jobq.testing import arun_task, run_task


def test_a_task_runs_eagerly_in_three_lines() -> None:
    assert run_task(echo, {"msg": "hi"}) == {"msg": "hi"}


async def test_progress_and_cancellation_through_a_test_context() -> None:
    ctx = JobContext.for_test()
    result = await arun_task(progress, {"steps": 2, "step_seconds": 0}, ctx)
    assert result == {"steps": 2}
    assert ctx.reported == [(0.5, "step 1 of 2"), (1.0, "step 2 of 2")]
    stopped = JobContext.for_test()
    stopped.cancel()
    await arun_task(progress, {"steps": 3, "step_seconds": 0}, stopped)
    assert stopped.reported == []


def test_errors_the_task_raises_propagate() -> None:
    with pytest.raises(PermanentError):
        run_task(fail, {"permanent": True})


def test_what_json_cannot_carry_fails_as_it_would_on_a_worker() -> None:
    @task("returns.a.date")
    def returns_a_date(payload: Any) -> Any:
        return dt.date(2026, 12, 1)

    with pytest.raises(InvalidArgument) as raised:
        run_task(returns_a_date, None)
    assert raised.value.field == "result"
    with pytest.raises(InvalidArgument):
        run_task(echo, {1, 2})


def test_the_pytest_plugin_gives_a_test_context(jobq_ctx: JobContext) -> None:
    assert jobq_ctx.attempt == 1
    jobq_ctx.progress(0.25, "a quarter")
    assert jobq_ctx.reported == [(0.25, "a quarter")]
