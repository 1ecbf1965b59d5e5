"""Several jq-server replicas and their workers on one PostgreSQL database.

Process plumbing only; tests/e2e/test_replicas.py holds the tests. Every process is
stopped by its pid when `stop()` runs.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.auth_keys import BOOTSTRAP_KEYS, WORKER_KEY
from tests.e2e.conftest import BIN, STARTUP, Proc, free_port, wait_until
from tests.http import http_get

TASKS = "replica_tasks"


def gauge(metrics_text: str, name: str) -> float | None:
    """The value of an unlabelled sample in Prometheus text format."""
    for line in metrics_text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    return None


@dataclass
class Server:
    name: str
    proc: Proc
    grpc_port: int
    http_port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def ready_status(self) -> int | None:
        got = http_get(self.http_port, "/readyz")
        return None if got is None else got[0]

    def leader(self) -> float | None:
        """jq_leader as this server reports it; None when it does not answer."""
        got = http_get(self.http_port, "/metrics")
        if got is None or got[0] != 200:
            return None
        return gauge(got[1], "jq_leader")

    def kill(self) -> None:
        self.proc.signal(signal.SIGKILL)
        self.proc.wait(10)


@dataclass
class Replicas:
    """jq-server replicas sharing `database_url`, and workers each attached to one of them."""

    tmp: Path
    database_url: str
    servers: list[Server] = field(default_factory=list)
    workers: list[Proc] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "JQ_DATABASE_URL": self.database_url,
            "JQ_SCHEDULER_INTERVAL": "100ms",
            "JQ_LEASE_WAIT": "1s",
            "JQ_LOG_FORMAT": "json",
            "JQ_LOG_LEVEL": "INFO",
            "JQ_AUTH_BOOTSTRAP_KEYS": BOOTSTRAP_KEYS,
            "JQ_TOKEN": WORKER_KEY,  # what the workers send; servers ignore it
            "PYTHONUNBUFFERED": "1",
            **extra,
        }

    def start_server(self, name: str = "", **env: str) -> Server:
        name = name or f"server{len(self.servers)}"
        grpc_port, http_port = free_port(), free_port()
        proc = Proc(
            [str(BIN / "jq-server")],
            self.env(JQ_GRPC_PORT=str(grpc_port), JQ_HTTP_PORT=str(http_port), **env),
            self.tmp / f"{name}.log",
        )
        server = Server(name, proc, grpc_port, http_port)
        self.servers.append(server)
        wait_until(lambda: server.ready_status() == 200, STARTUP, what=f"{name} /readyz")
        return server

    def start_worker(self, server: Server, *args: str, name: str = "", **env: str) -> Proc:
        name = name or f"worker{len(self.workers)}"
        argv = [str(BIN / "jq-worker"), "--tasks", TASKS, *args]
        proc = Proc(
            argv,
            self.env(JQ_SERVER_ADDRESS=server.address, JQ_WORKER_HTTP_PORT=str(free_port()), **env),
            self.tmp / f"{name}.log",
        )
        self.workers.append(proc)
        wait_until(
            lambda: "worker registered" in proc.output(), STARTUP, what=f"{name} to register"
        )
        return proc

    def leaders(self) -> list[Server]:
        return [s for s in self.servers if s.leader() == 1]

    def stop(self) -> None:
        for proc in [*reversed(self.workers), *(s.proc for s in reversed(self.servers))]:
            proc.stop()


@dataclass
class LeaderSample:
    at: float
    values: tuple[float | None, ...]  # jq_leader per server; None: it did not answer

    @property
    def complete(self) -> bool:
        return all(v is not None for v in self.values)

    @property
    def total(self) -> float:
        return sum(v or 0.0 for v in self.values)


class LeaderSampler:
    """Reads every server's jq_leader in a background thread until stopped."""

    def __init__(self, servers: list[Server], interval: float = 0.05) -> None:
        self._servers = servers
        self._interval = interval
        self._stop = threading.Event()
        self.samples: list[LeaderSample] = []
        self._thread = threading.Thread(target=self._run, name="leader-sampler", daemon=True)

    def __enter__(self) -> LeaderSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            values = tuple(s.leader() for s in self._servers)
            self.samples.append(LeaderSample(time.monotonic(), values))
            self._stop.wait(self._interval)


# Signals go to the postmaster itself, read from postmaster.pid: as root the harness's
# process is `runuser`, which does not pass SIGINT or SIGKILL on to postgres.
