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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from jobq.auth.principal import Role
from jobq.client import Client
from tests.auth_keys import BOOTSTRAP_KEYS, CTL_ROLE, KEY_FOR_ROLE, WORKER_KEY
from tests.http import is_ready

BIN = Path(sys.executable).parent
EXAMPLE_TASKS = "jobq.examples"
TASKS_DIR = Path(__file__).parent
# How long a process may take to come up: at load 10 a jq-server took over 20 s to import
# and print its first line (a failover test run failed there, before any Redis fault).
STARTUP = 60.0


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


def scalar(url: str, sql: str) -> Any:
    """One value from the test's database, read beside the processes under test."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(sql).fetchone()  # type: ignore[arg-type]
        return row[0] if row else None


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


BACKENDS = ("sqlite", "postgres", "pgbouncer")


def ctl_key(args: tuple[str, ...] | list[str]) -> str:
    """The key of the role a jq-ctl command needs (its first word that is a command)."""
    command = next((a for a in args if a in CTL_ROLE), "get")
    return KEY_FOR_ROLE[CTL_ROLE[command]]


@dataclass(frozen=True)
class Database:
    """Where a cluster keeps its jobs: `url` for the pool, `direct_url` for sessions."""

    backend: str
    url: str
    direct_url: str = ""


class Cluster:
    """One jq-server (or several replicas) and any number of workers on one database."""

    def __init__(self, tmp: Path, database: Database | None = None) -> None:
        self.tmp = tmp
        self.database = database or Database("sqlite", f"sqlite:///{tmp}/jobq.db")
        self.grpc_port = free_port()
        self.http_port = free_port()
        self.address = f"127.0.0.1:{self.grpc_port}"
        self.procs: list[Proc] = []
        self.env = {
            **os.environ,
            "JQ_DATABASE_URL": self.database.url,
            "JQ_DATABASE_DIRECT_URL": self.database.direct_url,
            "JQ_GRPC_PORT": str(self.grpc_port),
            "JQ_HTTP_PORT": str(self.http_port),
            "JQ_SERVER_ADDRESS": self.address,
            "JQ_SCHEDULER_INTERVAL": "100ms",
            "JQ_LEASE_WAIT": "1s",
            "JQ_LOG_FORMAT": "json",
            "JQ_LOG_LEVEL": "INFO",
            # Auth on, as in production: a bootstrap key per role (tests/auth_keys.py).
            "JQ_AUTH_BOOTSTRAP_KEYS": BOOTSTRAP_KEYS,
            "PYTHONUNBUFFERED": "1",
        }

    def start_server(self, **env: str) -> Proc:
        proc = Proc([str(BIN / "jq-server")], self.env | env, self.tmp / "server.log")
        self.procs.append(proc)
        wait_until(lambda: self._ready(self.http_port), STARTUP, what="jq-server /readyz")
        return proc

    def start_replica(self, name: str) -> Replica:
        """Another jq-server on the same database, on ports of its own."""
        grpc_port, http_port = free_port(), free_port()
        env = self.env | {"JQ_GRPC_PORT": str(grpc_port), "JQ_HTTP_PORT": str(http_port)}
        proc = Proc([str(BIN / "jq-server")], env, self.tmp / f"{name}.log")
        self.procs.append(proc)
        wait_until(lambda: self._ready(http_port), STARTUP, what=f"{name} /readyz")
        return Replica(proc, f"127.0.0.1:{grpc_port}", http_port)

    @staticmethod
    def _ready(http_port: int) -> bool:
        return is_ready(http_port, timeout=1)

    def metric(self, name: str, http_port: int | None = None, **labels: str) -> float:
        """One sample from a server's /metrics; 0 when it has not been observed yet."""
        port = http_port or self.http_port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    return float(sample.value)
        return 0.0

    def start_worker(self, *args: str, name: str = "worker", **env: str) -> Proc:
        port = str(free_port())
        argv = [str(BIN / "jq-worker"), "--tasks", f"{EXAMPLE_TASKS},e2e_tasks", *args]
        proc = Proc(
            argv,
            self.env | {"JQ_WORKER_HTTP_PORT": port, "JQ_TOKEN": WORKER_KEY} | env,
            self.tmp / f"{name}-{len(self.procs)}.log",
        )
        self.procs.append(proc)
        wait_until(
            lambda: "worker registered" in proc.output(), STARTUP, what=f"{name} to register"
        )
        return proc

    def ctl(
        self, *args: str, input: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "jq-ctl"), "--server", self.address, *args],
            env=self.env | {"JQ_TOKEN": ctl_key(args)},
            capture_output=True,
            text=True,
            input=input,
            timeout=timeout,
        )

    def ctl_json(self, *args: str) -> Any:
        result = self.ctl(*args, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def client(self, role: Role = Role.SUBMITTER) -> Client:
        return Client(self.address, token=KEY_FOR_ROLE[role])

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


@dataclass(frozen=True)
class Replica:
    proc: Proc
    address: str
    http_port: int


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    """A fresh, empty store per test on each backend; PostgreSQL ones are pre-migrated."""
    backend: str = request.param
    if backend == "sqlite":
        return Database(backend, f"sqlite:///{tmp_path}/jobq.db")
    direct = request.getfixturevalue("pg_databases").create()
    if backend == "postgres":
        return Database(backend, direct)
    bouncer = request.getfixturevalue("pg_bouncer")
    return Database(backend, bouncer.url(direct.rsplit("/", 1)[1]), direct_url=direct)


@pytest.fixture
def cluster(tmp_path: Path, database: Database) -> Iterator[Cluster]:
    made = Cluster(tmp_path, database)
    try:
        yield made
    finally:
        made.stop()


@pytest.fixture
def client(cluster: Cluster) -> Iterator[Client]:
    """A submitter's client."""
    with contextlib.closing(cluster.client()) as c:
        yield c


@pytest.fixture
def operator(cluster: Cluster) -> Iterator[Client]:
    """An operator's client: queues, workers, dead letters."""
    with contextlib.closing(cluster.client(Role.OPERATOR)) as c:
        yield c
