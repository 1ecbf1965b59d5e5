"""The SDK and jq-ctl against a real in-process server (jobq.testing): what a new user meets."""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from jobq import AsyncClient, JobState, NotFound, RetryPolicy, Unavailable
from jobq.examples import echo, fail
from jobq.testing import InMemoryServer, ServerThread

JQ_CTL = str(Path(sys.executable).parent / "jq-ctl")


def ctl(server: ServerThread, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [JQ_CTL, "--server", server.address, *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )


def test_payload_and_result_are_python_values(jobq_server: ServerThread) -> None:
    with jobq_server.worker(echo), jobq_server.client() as client:
        submitted = client.submit(echo, {"items": [1, 2], "ok": True})
        assert submitted.payload == {"items": [1, 2], "ok": True}
        done = client.wait(submitted.id)
    assert done.state is JobState.SUCCEEDED
    assert done.result == {"items": [1, 2], "ok": True}


def test_a_type_no_live_worker_serves_is_warned_of(
    jobq_server: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    with jobq_server.worker(echo), jobq_server.client() as client:
        served = client.submit_ex("echo", {})
        assert served.warnings == ()
        with caplog.at_level(logging.WARNING, logger="jobq.client"):
            unserved = client.submit_ex("ecko", {})
        assert unserved.job.state is JobState.QUEUED  # accepted all the same
        (warning,) = unserved.warnings
        assert "no live worker serves task 'ecko' on queue 'default'" in warning
        assert warning in caplog.text
        line = ctl(jobq_server, "submit", "ecko", "{}")
    assert line.returncode == 0, line.stderr
    assert "jq-ctl: warning: no live worker serves task 'ecko'" in line.stderr


def test_attempts_start_again_after_a_replay(jobq_server: ServerThread) -> None:
    with jobq_server.worker(fail), jobq_server.client() as client:
        job = client.submit(fail, {"permanent": True}, max_attempts=1)
        assert client.wait(job.id).state is JobState.DEAD
        assert client.replay_dead(ids=[job.id]) == 1
        again = client.wait(job.id)
        shown = ctl(jobq_server, "get", job.id)
    assert again.state is JobState.DEAD
    assert again.attempt == 2 and again.attempts_used == 1
    assert "1 of 1" in shown.stdout and "2 of 1" not in shown.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_idempotent_calls_ride_out_a_server_that_is_not_up_yet(tmp_path: Path) -> None:
    port = _free_port()
    patient = RetryPolicy(attempts=60, initial_backoff=0.05, max_backoff=0.3)
    async with AsyncClient(f"127.0.0.1:{port}", retry=patient) as client:
        # Without an idempotency key a submit is never repeated: it may have been committed.
        with pytest.raises(Unavailable):
            await client.submit("echo", {})
        read = asyncio.create_task(client.get("0190c4a8-5d2e-7a3b-8c4d-5e6f7a8b9c0d"))
        keyed = asyncio.create_task(client.submit("echo", {}, idempotency_key="order-42"))
        await asyncio.sleep(0.5)
        assert not read.done() and not keyed.done()
        async with InMemoryServer(tmp_path, grpc_port=port):
            with pytest.raises(NotFound):  # the server answered: the job does not exist
                await read
            submitted = await keyed
            assert submitted.state is JobState.QUEUED


def test_cli_hints_tables_confirmation_and_version(jobq_server: ServerThread) -> None:
    down = subprocess.run(
        [JQ_CTL, "--server", "127.0.0.1:1", "list"], capture_output=True, text=True, timeout=120
    )
    assert down.returncode == 5
    assert "jq-ctl: hint: is jq-server running? Start one with `make run`" in down.stderr
    stats = ctl(jobq_server, "stats")
    assert stats.returncode == 0 and "active workers" in stats.stdout
    refused = ctl(jobq_server, "dlq", "discard", "--queue", "default")
    assert refused.returncode == 2
    assert "refused without --yes (not a terminal)" in refused.stderr
    assert ctl(jobq_server, "dlq", "discard", "--queue", "default", "--yes").returncode == 0
    assert "no jobs" in ctl(jobq_server, "list").stdout
    version = ctl(jobq_server, "--version")
    assert version.returncode == 0 and version.stdout.startswith("jq-ctl ")
