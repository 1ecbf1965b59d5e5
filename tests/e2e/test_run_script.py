"""`make run` (scripts/run.sh) as a terminal drives it: Ctrl-C, SIGTERM, and a failed start.

The script is started in a session of its own and signalled through its process group, as
a terminal's Ctrl-C reaches every process of the foreground job.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobq.client import Client
from jobq.core.states import JobState
from tests.e2e.conftest import free_port, wait_until

REPO = Path(__file__).resolve().parents[2]
RUN_SH = REPO / "scripts" / "run.sh"


class RunScript:
    def __init__(self, tmp: Path, **env: str) -> None:
        self.tmp = tmp
        self.db = tmp / "jobq.db"
        self.grpc_port = free_port()
        self.env = {
            **os.environ,
            "JQ_DATABASE_URL": f"sqlite:///{self.db}",
            "JQ_GRPC_PORT": str(self.grpc_port),
            "JQ_HTTP_PORT": str(free_port()),
            "JQ_WORKER_HTTP_PORT": str(free_port()),
            "JQ_TASKS": "jobq.examples,tests.e2e.run_tasks",
            "JQ_SCHEDULER_INTERVAL": "100ms",
            "JQ_LEASE_WAIT": "1s",
            # Short leases: a job left RUNNING by a lost report runs again within the test.
            "JQ_DEFAULT_LEASE_TIMEOUT": "2s",
            "PYTHONUNBUFFERED": "1",
        } | env
        self.env.pop("JQ_SERVER_ADDRESS", None)
        self.address = f"127.0.0.1:{self.grpc_port}"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def start(self) -> subprocess.Popen[bytes]:
        log = self.tmp / f"run-{len(self.procs)}.log"
        self.logs.append(log)
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [str(RUN_SH)],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, like a terminal's job
            )
        self.procs.append(proc)
        return proc

    def output(self, index: int = -1) -> str:
        return self.logs[index].read_text(errors="replace")

    def start_ready(self) -> subprocess.Popen[bytes]:
        proc = self.start()
        wait_until(
            lambda: "jobq: gRPC on" in self.output() or proc.poll() is not None,
            timeout=60,
            what="make run to start",
        )
        assert proc.poll() is None, self.output()
        return proc

    def ctrl_c(self, proc: subprocess.Popen[bytes]) -> None:
        os.killpg(proc.pid, signal.SIGINT)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(5)

    def succeeded_events(self, job_id: str) -> int:
        with contextlib.closing(sqlite3.connect(self.db)) as conn:
            (count,) = conn.execute(
                "SELECT count(*) FROM job_events WHERE job_id = ? AND to_state = 'succeeded'",
                (job_id,),
            ).fetchone()
        return int(count)


@pytest.fixture
def run_script(tmp_path: Path) -> Iterator[RunScript]:
    made = RunScript(tmp_path)
    try:
        yield made
    finally:
        made.stop_all()


def runs_of(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.parametrize("stop", ["ctrl-c", "sigterm"])
def test_stopping_make_run_lets_the_worker_report_before_the_server_goes(
    run_script: RunScript, tmp_path: Path, stop: str
) -> None:
    # Given make run with a job in flight
    proc = run_script.start_ready()
    runs = tmp_path / "runs"
    with contextlib.closing(Client(run_script.address)) as client:
        job = client.submit("recorded", {"seconds": 1.5, "runs": str(runs)})
        wait_until(lambda: client.get(job.id).state is JobState.RUNNING, what="job to start")
    # When the terminal's Ctrl-C reaches the whole foreground job (or SIGTERM the script)
    if stop == "ctrl-c":
        run_script.ctrl_c(proc)
    else:
        proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0, run_script.output()
    # Then the job ran once, its outcome reached the store, and nothing is left running
    assert runs_of(runs) == [f"{job.id} 1"]
    assert run_script.succeeded_events(job.id) == 1
    # And a restart does not run it again, even after its lease would have expired
    again = run_script.start_ready()
    with contextlib.closing(Client(run_script.address)) as client:
        assert client.get(job.id).state is JobState.SUCCEEDED
        probe = client.submit("recorded", {"seconds": 0, "runs": str(tmp_path / "probe")})
        wait_until(lambda: client.get(probe.id).state is JobState.SUCCEEDED, what="probe job")
    run_script.ctrl_c(again)
    assert again.wait(60) == 0, run_script.output()
    assert runs_of(runs) == [f"{job.id} 1"]
    assert run_script.succeeded_events(job.id) == 1


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(("jq-server:", "jq-worker:"))]


@pytest.mark.parametrize("variable", ["JQ_GRPC_PORT", "JQ_HTTP_PORT", "JQ_WORKER_HTTP_PORT"])
def test_make_run_with_a_port_in_use_names_the_variable(
    run_script: RunScript, variable: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        run_script.env[variable] = str(taken.getsockname()[1])
        proc = run_script.start()
        rc = proc.wait(60)
    output = run_script.output()
    assert rc != 0, output
    assert "Traceback" not in output
    (line,) = error_lines(output)
    assert variable in line and "in use" in line, line


def test_make_run_with_a_tasks_module_that_cannot_be_imported_names_it(
    run_script: RunScript,
) -> None:
    run_script.env["JQ_TASKS"] = "jobq.examples,no_such_tasks_module"
    proc = run_script.start()
    rc = proc.wait(60)
    output = run_script.output()
    assert rc != 0, output
    assert "Traceback" not in output
    (line,) = error_lines(output)
    assert "no_such_tasks_module" in line and "JQ_TASKS" in line, line


def test_make_run_on_a_database_another_server_holds_refuses_in_one_line(
    run_script: RunScript, tmp_path: Path
) -> None:
    first = run_script.start_ready()
    second = RunScript(tmp_path / "second")
    (tmp_path / "second").mkdir()
    second.env["JQ_DATABASE_URL"] = run_script.env["JQ_DATABASE_URL"]
    try:
        proc = second.start()
        rc = proc.wait(60)
        output = second.output()
        assert rc != 0, output
        assert "Traceback" not in output
        (line,) = error_lines(output)
        assert "in use by another jq-server" in line, line
        assert first.poll() is None, "the first server keeps running"
    finally:
        second.stop_all()
