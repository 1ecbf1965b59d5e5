"""Plumbing for tests/e2e/test_faults.py: one jq-server restarted on fixed ports, workers
killed and replaced, recorded jobs submitted in batches, and the check of what ran.

Every process is stopped by its pid when `stop()` runs.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import math
import os
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from jobq import AsyncClient, JobqError
from tests.auth_keys import BOOTSTRAP_KEYS, OPERATOR_KEY, SUBMITTER_KEY, WORKER_KEY
from tests.e2e.conftest import BIN, STARTUP, Proc, free_port, wait_until
from tests.e2e.fault_tasks import LOG_VARIABLE
from tests.http import http_get

TASK = "faults.record"
QUEUE = "faults"
MAX_ATTEMPTS = 50  # worker kills must never exhaust a job's retries: a dead job is a lost one


class FaultCluster:
    """One jq-server that can be SIGKILLed and started again on the same ports, and workers."""

    def __init__(self, tmp: Path, database_url: str, concurrency: int = 20) -> None:
        self.tmp = tmp
        self.database_url = database_url
        self.executions = tmp / "executions.log"
        self.executions.touch()
        self.concurrency = concurrency
        self.grpc_port, self.http_port = free_port(), free_port()
        self.address = f"127.0.0.1:{self.grpc_port}"
        self.server: Proc | None = None
        self.workers: list[Proc] = []  # alive, as far as the test knows
        self.killed_at: dict[int, float] = {}  # worker pid -> time.time() of its SIGKILL
        self.procs: list[Proc] = []

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "JQ_DATABASE_URL": self.database_url,
            "JQ_SERVER_ADDRESS": self.address,
            "JQ_SCHEDULER_INTERVAL": "100ms",
            "JQ_LEASE_WAIT": "1s",
            # A request waits at most 1 s for a connection, so a database outage is answered
            # UNAVAILABLE (and retried) rather than waited out by every caller at once.
            "JQ_DATABASE_POOL_TIMEOUT": "1s",
            "JQ_LOG_FORMAT": "json",
            "JQ_LOG_LEVEL": "INFO",
            "JQ_AUTH_BOOTSTRAP_KEYS": BOOTSTRAP_KEYS,
            "JQ_TOKEN": WORKER_KEY,  # what the workers send; servers ignore it
            "PYTHONUNBUFFERED": "1",
            **extra,
        }

    def ready(self) -> bool:
        got = http_get(self.http_port, "/readyz", timeout=1)
        return got is not None and got[0] == 200

    def start_server(self) -> Proc:
        count = sum(1 for p in self.procs if p.log_path.name.startswith("server"))
        proc = Proc(
            [str(BIN / "jq-server")],
            self.env(JQ_GRPC_PORT=str(self.grpc_port), JQ_HTTP_PORT=str(self.http_port)),
            self.tmp / f"server-{count}.log",
        )
        self.procs.append(proc)
        self.server = proc
        wait_until(self.ready, STARTUP, what="jq-server /readyz")
        return proc

    def kill_server(self) -> None:
        assert self.server is not None
        self.server.signal(signal.SIGKILL)
        self.server.wait(10)

    def start_worker(self, wait: bool = True) -> Proc:
        proc = Proc(
            [
                str(BIN / "jq-worker"),
                "--tasks",
                "fault_tasks",
                "--queues",
                QUEUE,
                "--concurrency",
                str(self.concurrency),
            ],
            self.env(JQ_WORKER_HTTP_PORT=str(free_port()), **{LOG_VARIABLE: str(self.executions)}),
            self.tmp / f"worker-{len(self.procs)}.log",
        )
        self.procs.append(proc)
        self.workers.append(proc)
        if wait:
            wait_until(
                lambda: "worker registered" in proc.output(), STARTUP, what="a worker to register"
            )
        return proc

    def kill_worker(self, proc: Proc) -> None:
        self.killed_at[proc.pid] = time.time()
        proc.signal(signal.SIGKILL)
        proc.wait(10)
        self.workers.remove(proc)

    def worker_ids(self) -> dict[int, str]:
        """pid -> the worker id each worker process registered under (its last one)."""
        found: dict[int, str] = {}
        for proc in self.procs:
            if not proc.log_path.name.startswith("worker"):
                continue
            for line in proc.output().splitlines():
                if "worker registered" in line:
                    with contextlib.suppress(ValueError):
                        found[proc.pid] = json.loads(line).get("worker_id", "?")
        return found

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


async def create_queue(address: str, lease: float) -> None:
    async with AsyncClient(address, token=OPERATOR_KEY) as client:
        await client.create_queue(
            QUEUE,
            lease_timeout=f"{lease}s",
            max_attempts=MAX_ATTEMPTS,
            backoff_base="50ms",
            backoff_max="200ms",
        )


class BatchSubmitter:
    """Submits `total` recorded jobs with SubmitBatch, in a thread of its own.

    A batch that fails (the server or the database is down) is sent again with the same
    idempotency keys, so a batch that was stored but not acknowledged is not stored twice.
    `acknowledged` holds the id of every job whose batch returned OK.
    """

    def __init__(
        self, address: str, total: int, chunk: int = 250, limit: float = 90.0, seed: int = 9
    ) -> None:
        self.address = address
        self.total = total
        self.chunk = chunk
        self.limit = limit
        self.rng = random.Random(seed)
        self.acknowledged: dict[int, str] = {}  # job number -> job id
        self.failures: collections.Counter[str] = collections.Counter()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def start(self) -> BatchSubmitter:
        self._thread.start()
        return self

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the submitter did not finish"

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def spec(self, n: int) -> dict[str, Any]:
        return {
            "type": TASK,
            "queue": QUEUE,
            "payload": {"n": n, "ms": self.rng.randint(5, 50)},
            "idempotency_key": f"fault-{n}",
            "max_attempts": MAX_ATTEMPTS,
        }

    async def _run(self) -> None:
        deadline = time.monotonic() + self.limit
        client = AsyncClient(self.address, timeout=10, token=SUBMITTER_KEY)
        try:
            for start in range(0, self.total, self.chunk):
                numbers = range(start, min(start + self.chunk, self.total))
                specs = [self.spec(n) for n in numbers]
                while time.monotonic() < deadline:
                    try:
                        results = await client.submit_many(specs, chunk=len(specs))
                    except JobqError as exc:
                        self.failures[type(exc).__name__] += 1
                        # A fresh channel: the old one may sit in gRPC's reconnect backoff.
                        await client.aclose()
                        await asyncio.sleep(0.2)
                        client = AsyncClient(self.address, timeout=10, token=SUBMITTER_KEY)
                        continue
                    for n, result in zip(numbers, results, strict=True):
                        self.acknowledged[n] = result.job.id
                    break
        finally:
            await client.aclose()


@dataclass(frozen=True)
class Execution:
    job_id: str
    attempt: int
    pid: int
    at: float  # time.time() when it started


def read_executions(path: Path) -> dict[str, list[Execution]]:
    runs: dict[str, list[Execution]] = collections.defaultdict(list)
    for line in path.read_text().splitlines():
        job_id, attempt, pid, at = line.split()
        runs[job_id].append(Execution(job_id, int(attempt), int(pid), float(at)))
    return runs


@dataclass(frozen=True)
class Event:
    seq: int
    kind: str
    attempt: int
    worker_id: str
    at: float  # as a time.time() value: the server runs on this machine's clock


def read_store(url: str) -> tuple[dict[str, tuple[str, int]], dict[str, list[Event]]]:
    """(job id -> (state, attempt), job id -> its events in order), read with SQL."""
    with psycopg.connect(url, autocommit=True) as conn:
        jobs = {
            str(r[0]): (r[1], r[2]) for r in conn.execute("SELECT id, state, attempt FROM jobs")
        }
        events: dict[str, list[Event]] = collections.defaultdict(list)
        for job_id, seq, kind, attempt, at, details in conn.execute(
            "SELECT job_id, seq, kind, attempt, at, details FROM job_events ORDER BY seq"
        ):
            worker = details.get("worker_id", "")
            events[str(job_id)].append(Event(seq, kind, attempt, worker, at.timestamp()))
    return jobs, events


def wait_for_success(url: str, ids: set[str], timeout: float) -> bool:
    """True once every job of `ids` succeeded; False when `timeout` passes first."""

    def all_succeeded() -> bool:
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM jobs WHERE state = 'succeeded'").fetchone()
        return row is not None and row[0] >= len(ids)

    try:
        wait_until(all_succeeded, timeout=timeout, interval=0.5, what="every job to succeed")
    except AssertionError:
        return False
    return True


@dataclass
class Audit:
    """What ran against what the store says happened, job by job."""

    acknowledged: set[str]
    jobs: dict[str, tuple[str, int]]
    events: dict[str, list[Event]]
    runs: dict[str, list[Execution]]
    worker_ids: dict[int, str] = field(default_factory=dict)
    killed_at: dict[int, float] = field(default_factory=dict)

    @property
    def executions(self) -> int:
        return sum(len(r) for r in self.runs.values())

    @property
    def lost(self) -> list[str]:
        return sorted(
            i for i in self.acknowledged if self.jobs.get(i, ("missing", 0))[0] != "succeeded"
        )

    @property
    def duplicated(self) -> dict[str, list[Execution]]:
        """Jobs that started more than once."""
        return {j: r for j, r in self.runs.items() if len(r) > 1}

    def extra_executions(self) -> int:
        return sum(len(r) - 1 for r in self.duplicated.values())

    def explained(self, job_id: str) -> list[bool]:
        """For each execution of a job but the succeeding one: did its attempt end in
        `lease_expired` (and was it the only execution of that attempt)?"""
        state, final = self.jobs.get(job_id, ("missing", 0))
        expired = {e.attempt for e in self.events.get(job_id, []) if e.kind == "lease_expired"}
        runs = self.runs[job_id]
        per_attempt = collections.Counter(r.attempt for r in runs)
        verdicts: list[bool] = []
        final_seen = False
        for run in runs:
            if run.attempt == final and state == "succeeded" and not final_seen:
                final_seen = True
                continue
            verdicts.append(run.attempt in expired and per_attempt[run.attempt] == 1)
        return verdicts

    def unexplained(self) -> list[str]:
        return [j for j in self.duplicated if not all(self.explained(j))]

    def by_live_workers(self) -> list[str]:
        """Duplicated jobs with an earlier run whose lease expired while its worker lived:
        the worker was not killed, or not yet, when the lease of that attempt expired."""
        found = []
        for job_id, runs in self.duplicated.items():
            expired = {
                e.attempt: e.at for e in self.events.get(job_id, []) if e.kind == "lease_expired"
            }
            if any(
                r.attempt in expired and expired[r.attempt] < self.killed_at.get(r.pid, math.inf)
                for r in runs
            ):
                found.append(job_id)
        return found

    def describe(self, job_id: str) -> str:
        state, attempt = self.jobs.get(job_id, ("missing", 0))
        runs = ", ".join(
            f"attempt {r.attempt} at {_clock(r.at)} on pid {r.pid}"
            f" ({self.worker_ids.get(r.pid, '?')}{self._killed(r.pid)})"
            for r in self.runs.get(job_id, [])
        )
        events = ", ".join(
            f"#{e.seq} {e.kind} attempt {e.attempt} at {_clock(e.at)}"
            + (f" by {e.worker_id}" if e.worker_id else "")
            for e in self.events.get(job_id, [])
        )
        return (
            f"job {job_id} ({state}, attempt {attempt}): ran [{runs or 'never'}];"
            f" events [{events or 'none'}]"
        )

    def _killed(self, pid: int) -> str:
        return f", killed at {_clock(self.killed_at[pid])}" if pid in self.killed_at else ""

    def describe_all(self, job_ids: list[str], limit: int = 5) -> str:
        lines = [self.describe(j) for j in job_ids[:limit]]
        if len(job_ids) > limit:
            lines.append(f"... and {len(job_ids) - limit} more")
        return "\n  " + "\n  ".join(lines)

    def figures(self) -> str:
        explained = sum(sum(self.explained(j)) for j in self.duplicated)
        lease_expired = sum(
            1 for evs in self.events.values() for e in evs if e.kind == "lease_expired"
        )
        return (
            f"{len(self.acknowledged)} jobs acknowledged, {len(self.lost)} not succeeded;"
            f" {self.executions} executions; {len(self.duplicated)} jobs ran more than once"
            f" ({self.extra_executions()} extra executions, {explained} explained by"
            f" lease_expired, {len(self.by_live_workers())} jobs duplicated by live workers);"
            f" {lease_expired} lease_expired events"
        )


def audit(cluster: FaultCluster, acknowledged: set[str]) -> Audit:
    jobs, events = read_store(cluster.database_url)
    return Audit(
        acknowledged,
        jobs,
        events,
        read_executions(cluster.executions),
        cluster.worker_ids(),
        dict(cluster.killed_at),
    )


def _clock(at: float) -> str:
    """A time.time() value as the time of day, to the millisecond, as the logs show it."""
    return time.strftime("%H:%M:%S", time.gmtime(at)) + f".{int(at % 1 * 1000):03d}"
