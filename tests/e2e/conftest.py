"""Real jq-server, jq-worker and jq-ctl processes on loopback ports.

Every process a test starts is stopped by its pid when the test ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobq.client import Client

BIN = Path(sys.executable).parent
EXAMPLE_TASKS = "jobq.examples"
TASKS_DIR = Path(__file__).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.05, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what or predicate}")


class Proc:
    """A child process with its output in a log file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log_path = log
        self._log = log.open("wb")
        self.popen = subprocess.Popen(
            args, env=env, stdout=self._log, stderr=subprocess.STDOUT, cwd=TASKS_DIR
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            os.kill(self.popen.pid, sig)

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.popen.wait(5)
        self._log.close()

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")


class Cluster:
    """One jq-server and any number of workers, on a SQLite file in a temp dir."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.grpc_port = free_port()
        self.http_port = free_port()
        self.address = f"127.0.0.1:{self.grpc_port}"
        self.procs: list[Proc] = []
        self.env = {
            **os.environ,
            "JQ_DATABASE_URL": f"sqlite:///{tmp}/jobq.db",
            "JQ_GRPC_PORT": str(self.grpc_port),
            "JQ_HTTP_PORT": str(self.http_port),
            "JQ_SERVER_ADDRESS": self.address,
            "JQ_SCHEDULER_INTERVAL": "100ms",
            "JQ_LEASE_WAIT": "1s",
            "JQ_LOG_FORMAT": "json",
            "JQ_LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }

    def start_server(self, **env: str) -> Proc:
        proc = Proc([str(BIN / "jq-server")], self.env | env, self.tmp / "server.log")
        self.procs.append(proc)
        wait_until(self._ready, what="jq-server /readyz")
        return proc

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.http_port}/readyz", timeout=1
            ) as r:
                return r.status == 200
        except OSError:
            return False

    def start_worker(self, *args: str, name: str = "worker", **env: str) -> Proc:
        port = str(free_port())
        argv = [str(BIN / "jq-worker"), "--tasks", f"{EXAMPLE_TASKS},e2e_tasks", *args]
        proc = Proc(
            argv,
            self.env | {"JQ_WORKER_HTTP_PORT": port} | env,
            self.tmp / f"{name}-{len(self.procs)}.log",
        )
        self.procs.append(proc)
        wait_until(lambda: "worker registered" in proc.output(), what=f"{name} to register")
        return proc

    def ctl(
        self, *args: str, input: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "jq-ctl"), "--server", self.address, *args],
            env=self.env,
            capture_output=True,
            text=True,
            input=input,
            timeout=timeout,
        )

    def ctl_json(self, *args: str) -> Any:
        result = self.ctl(*args, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def client(self) -> Client:
        return Client(self.address)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    made = Cluster(tmp_path)
    try:
        yield made
    finally:
        made.stop()


@pytest.fixture
def client(cluster: Cluster) -> Iterator[Client]:
    with contextlib.closing(cluster.client()) as c:
        yield c
