"""pytest fixtures for jobq users, loaded through the `pytest11` entry point.

def test_welcome(jobq_server):
    with jobq_server.worker(send_welcome), jobq_server.client() as client:
        job = client.wait(client.submit(send_welcome, {"to": "a@b.c"}).id)
    assert job.result == {"sent": True}
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jobq.testing._server import ServerThread
from jobq.worker.context import JobContext


@pytest.fixture
def jobq_server(tmp_path: Path) -> Iterator[ServerThread]:
    """A real jq-server for this test: embedded store under tmp_path, loopback ports."""
    with ServerThread(tmp_path / "jobq") as server:
        yield server


@pytest.fixture
def jobq_ctx() -> JobContext:
    """JobContext.for_test(): progress() recorded in .reported, cancel() to ask for a stop."""
    return JobContext.for_test()
