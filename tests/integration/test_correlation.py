"""Correlation ids end to end: from the submitter's metadata onto the job, its submitted
event, and every log line the worker writes while running it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from jobq.client import AsyncClient
from jobq.core.states import JobState
from jobq.observability.logging import CorrelationFilter
from jobq.worker.task import task
from tests.auth_keys import OWNER_KEY
from tests.integration.inprocess import running_server, running_worker

CID = "corr-order-42"
task_log = logging.getLogger("tests.integration.tasks")


@task("corr.async", queue="corr")
async def logs_async(payload):
    task_log.info("coroutine task running")


@task("corr.sync", queue="corr")
def logs_sync(payload):
    task_log.info("plain function running")  # in the worker's thread pool


@task("corr.fails", queue="corr")
async def fails(payload):
    raise RuntimeError("boom")


TASKS = {t.name: t for t in (logs_async, logs_sync, fails)}


def correlation_of(caplog: pytest.LogCaptureFixture, message: str) -> str:
    records = [r for r in caplog.records if message in r.getMessage()]
    assert records, f"no log line containing {message!r}"
    return str(records[0].correlation_id)  # type: ignore[attr-defined]


async def test_given_a_correlation_id_when_a_worker_runs_the_job_then_its_log_lines_carry_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The filter configure_logging puts on the real handler, here on pytest's.
    caplog.handler.addFilter(CorrelationFilter())
    caplog.set_level(logging.INFO)
    async with (
        running_server(tmp_path) as server,
        AsyncClient(f"127.0.0.1:{server.grpc_port}", token=OWNER_KEY, correlation_id=CID) as client,
    ):
        jobs = [await client.submit(name, {}, queue="corr", max_attempts=1) for name in TASKS]
        async with running_worker(server, TASKS):
            finished = [await client.wait(job.id) for job in jobs]
        events = await server.store.jobs.events(jobs[0].id)

    assert [j.state for j in finished] == [JobState.SUCCEEDED, JobState.SUCCEEDED, JobState.DEAD]
    assert {j.correlation_id for j in finished} == {CID}
    assert events[0].details["correlation_id"] == CID
    assert correlation_of(caplog, "coroutine task running") == CID
    assert correlation_of(caplog, "plain function running") == CID
    assert correlation_of(caplog, "task corr.fails failed") == CID
    # The worker's own lines outside any job carry none.
    assert correlation_of(caplog, "worker registered") == ""
