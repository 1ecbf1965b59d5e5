"""Testing one's own tasks: call them eagerly, or against a real server held in memory.

    from jobq.testing import run_task

    def test_send_email():
        assert run_task(send_email, {"to": "a@b.c"}) == {"sent": True}

`run_task` / `arun_task`: eager mode, the task called in this process as a worker would call
it (payload and result through JSON, a `JobContext.for_test()`), no server at all.
`InMemoryServer` / `ServerThread`: a real jq-server in this process on the embedded SQLite
store in a temporary directory, gRPC on a loopback port, with in-process workers. The pytest
plugin (loaded by the `pytest11` entry point) offers them as the `jobq_server` and `jobq_ctx`
fixtures.
"""

from jobq.testing._eager import arun_task, run_task
from jobq.testing._server import InMemoryServer, ServerThread

__all__ = ["InMemoryServer", "ServerThread", "arun_task", "run_task"]
