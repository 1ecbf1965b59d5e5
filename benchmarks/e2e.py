"""What a user compares queues by, through the gRPC API with real jq-server and jq-worker
processes, on both stores in one run, and the raw-SQL ceiling on the same PostgreSQL.

    make bench                                   # both stores, 20,000 jobs each
    make bench BENCH_ARGS="--store postgres --jobs 50000"
    make bench BENCH_ARGS="--store postgres --queued 1000000"   # lease latency, 1M waiting
    make bench BENCH_ARGS="--limits --jobs 5000"  # rate limits, coordination on vs off

For each store:

- bulk enqueue: SubmitBatch through the SDK's `submit_many`, no worker running;
- process: jobs/s from the first job's start to the last one's finish (server clock),
  workers already running while the jobs are submitted;
- submit->start: one job at a time, from the client's clock before Submit to the task's
  first line (same machine, same clock);
- single submits: unary Submit from 50 concurrent clients (jobs/s, p50, p99);
- CPU per job of server and workers during the process phase, and their peak RSS;
- PostgreSQL only: `../shared/bench/pg_ceiling.py` on the same database right after, and
  jobq's process rate as a share of the ceiling.

Prints a table and writes every figure as JSON (`--json`, default .jq/bench.json).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jobq import AsyncClient, JobState
from jobq.auth.keys import bootstrap_entry, new_key
from jobq.auth.principal import Role
from jobq.core.errors import NotFound

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CEILING = ROOT.parent / "shared" / "bench" / "pg_ceiling.py"
QUEUE = "bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(port: int, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{what} did not become ready")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclasses.dataclass
class Cluster:
    """A jq-server and its workers, started for one store and stopped by pid."""

    database_url: str
    workers: int
    concurrency: int
    tmp: Path
    # Measured with auth on, as production runs: one throw-away key with the three roles the
    # benchmark uses; the server holds only its hash.
    key: str = dataclasses.field(default_factory=lambda: new_key()[2])
    grpc_port: int = dataclasses.field(default_factory=free_port)
    http_port: int = dataclasses.field(default_factory=free_port)
    server: subprocess.Popen[bytes] | None = None
    worker_procs: list[subprocess.Popen[bytes]] = dataclasses.field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def env(self) -> dict[str, str]:
        entry = bootstrap_entry(self.key, "*", [Role.SUBMITTER, Role.WORKER, Role.OPERATOR], [])
        return os.environ | {
            "JQ_AUTH_BOOTSTRAP_KEYS": f"[{entry}]",
            "JQ_TOKEN": self.key,
            "JQ_DATABASE_URL": self.database_url,
            "JQ_GRPC_PORT": str(self.grpc_port),
            "JQ_HTTP_PORT": str(self.http_port),
            "JQ_SERVER_ADDRESS": self.address,
            "JQ_LOG_LEVEL": "WARNING",
            "JQ_CONCURRENCY": str(self.concurrency),
        }

    def start_server(self) -> None:
        self.server = subprocess.Popen([str(BIN / "jq-server")], env=self.env())
        wait_ready(self.http_port, "jq-server")

    def start_workers(self) -> None:
        for _ in range(self.workers):
            port = free_port()
            env = self.env() | {"JQ_WORKER_HTTP_PORT": str(port)}
            self.worker_procs.append(
                subprocess.Popen(
                    [str(BIN / "jq-worker"), "--tasks", "benchmarks.tasks"], env=env, cwd=ROOT
                )
            )
            wait_ready(port, "jq-worker")

    def stop(self) -> None:
        # Workers first, so they can release and deregister while the server is up.
        for proc in [*self.worker_procs, *([self.server] if self.server else [])]:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def bulk_enqueue(client: AsyncClient, jobs: int, batch: int, queue: str) -> float:
    start = time.perf_counter()
    specs = ({"type": "noop", "queue": queue, "payload": i} for i in range(jobs))
    await client.submit_many(specs, chunk=batch)
    return jobs / (time.perf_counter() - start)


async def process(client: AsyncClient, cluster: Cluster, jobs: int, batch: int) -> dict[str, Any]:
    pids = {"server": [cluster.server.pid] if cluster.server else []}
    pids["workers"] = [p.pid for p in cluster.worker_procs]
    cpu_before = {name: sum(map(cpu_seconds, ps)) for name, ps in pids.items()}
    specs = ({"type": "noop", "queue": QUEUE, "payload": i} for i in range(jobs))
    submitted = await client.submit_many(specs, chunk=batch)
    while True:
        (stats,) = await client.queue_stats(QUEUE)
        if stats.by_state.get("succeeded", 0) >= jobs:
            break
        await asyncio.sleep(0.05)
    cpu = {name: sum(map(cpu_seconds, ps)) - cpu_before[name] for name, ps in pids.items()}
    ids = {s.job.id for s in submitted}
    first_start, last_finish = None, None
    token = ""
    while True:  # the server's own times: first start to last finish
        page = await client.list(queue=QUEUE, page_size=1000, page_token=token)
        for job in page.jobs:
            if job.id in ids and job.started_at and job.finished_at:
                first_start = min(first_start or job.started_at, job.started_at)
                last_finish = max(last_finish or job.finished_at, job.finished_at)
        token = page.next_page_token
        if not token:
            break
    assert first_start is not None and last_finish is not None
    return {
        "process_jobs_per_s": jobs / (last_finish - first_start).total_seconds(),
        "cpu_ms_per_job": {name: seconds / jobs * 1e3 for name, seconds in cpu.items()},
    }


async def submit_to_start(client: AsyncClient, samples: int) -> dict[str, float]:
    latencies = []
    for _ in range(samples):
        before = time.time()
        job = await client.submit("stamp", None, queue=QUEUE)
        done = await client.wait(job.id)
        assert done.state is JobState.SUCCEEDED, done
        latencies.append((float(done.result or 0) - before) * 1e3)
        await asyncio.sleep(0.01)
    return {"p50_ms": percentile(latencies, 0.5), "p99_ms": percentile(latencies, 0.99)}


async def single_submits(address: str, key: str, clients: int, total: int) -> dict[str, float]:
    latencies: list[float] = []

    async def one_client(n: int) -> None:
        async with AsyncClient(address, timeout=60, token=key) as client:
            for i in range(n):
                start = time.perf_counter()
                await client.submit("noop", i, queue=QUEUE)
                latencies.append((time.perf_counter() - start) * 1e3)

    start = time.perf_counter()
    await asyncio.gather(*(one_client(total // clients) for _ in range(clients)))
    elapsed = time.perf_counter() - start
    return {
        "jobs_per_s": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 0.5),
        "p99_ms": percentile(latencies, 0.99),
    }


async def lease_latency(address: str, key: str, calls: int) -> dict[str, float]:
    """LeaseJobs round trips of 10 jobs each, acknowledging every batch: the queued set
    stays the same size while it is measured."""
    from jobq.core.model import LeaseRef, Outcome, OutcomeKind
    from jobq.worker.connection import WorkerConnection

    conn = WorkerConnection(address, key)
    try:
        await conn.register("", ["deep"], 10, ["noop"])
        latencies = []
        for _ in range(calls):
            start = time.perf_counter()
            jobs = await conn.lease(["deep"], 10, dt.timedelta(0), ["noop"])
            latencies.append((time.perf_counter() - start) * 1e3)
            await conn.report(
                [Outcome(LeaseRef(j.id, j.attempt), OutcomeKind.COMPLETED) for j in jobs]
            )
        await conn.deregister()
    finally:
        await conn.close()
    return {"p50_ms": percentile(latencies, 0.5), "p99_ms": percentile(latencies, 0.99)}


async def measure(cluster: Cluster, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with AsyncClient(cluster.address, timeout=300, token=cluster.key) as client:
        out["bulk_enqueue_jobs_per_s"] = await bulk_enqueue(client, args.jobs, args.batch, "idle")
        await client.purge_queue("idle")
        cluster.start_workers()
        out.update(await process(client, cluster, args.jobs, args.batch))
        out["submit_to_start"] = await submit_to_start(client, args.samples)
        out["single_submit"] = await single_submits(cluster.address, cluster.key, 50, args.single)
        if args.queued:
            out["lease_latency"] = {}
            for waiting in (10_000, args.queued):
                try:
                    (stats,) = await client.queue_stats("deep")
                    have = stats.by_state.get("queued", 0)
                except NotFound:
                    have = 0
                await bulk_enqueue(client, waiting - have, args.batch, "deep")
                out["lease_latency"][str(waiting)] = await lease_latency(
                    cluster.address, cluster.key, 200
                )
    pids = [cluster.server.pid] if cluster.server else []
    out["rss_mb"] = {
        "server": sum(map(peak_rss_mb, pids)),
        "workers": max((peak_rss_mb(p.pid) for p in cluster.worker_procs), default=0.0),
    }
    return out


def ceiling(script: Path, database_url: str, jobs: int) -> dict[str, Any] | None:
    """The raw lifecycle SQL on the same database: the best batched configuration."""
    if not script.exists():
        print(f"(no SQL ceiling: {script} is not there; see --ceiling)", file=sys.stderr)
        return None
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run(
            [sys.executable, str(script), "--dsn", database_url, "--n", str(jobs),
             "--n1", "2000", "--runs", "1", "--out", out.name],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        results = json.loads(Path(out.name).read_text())["results"]
    batched = [r for r in results if "batch500" in r["config"] or "COPY" in r["config"]]
    best = max(batched, key=lambda r: r["lifecycle_rate_median"])
    return {"config": best["config"], "lifecycle_per_s": best["lifecycle_rate_median"]}


@contextlib.contextmanager
def database(store: str, tmp: Path, url: str) -> Iterator[str]:
    if store == "sqlite":
        yield f"sqlite:///{tmp}/bench.db"
    elif url:
        yield url
    else:
        from tests.harness.services import postgres_server

        with postgres_server(fsync=True) as server:
            server.execute("CREATE DATABASE bench")
            yield server.url("bench")


def run_store(store: str, args: argparse.Namespace) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="jq-bench-") as tmp,
        database(store, Path(tmp), args.database_url) as url,
    ):
        cluster = Cluster(url, args.workers, args.concurrency, Path(tmp))
        try:
            cluster.start_server()
            result = asyncio.run(measure(cluster, args))
        finally:
            cluster.stop()
        if store == "postgres":
            result["sql_ceiling"] = ceiling(Path(args.ceiling), url, args.jobs)
            if result["sql_ceiling"]:
                result["share_of_ceiling"] = (
                    result["process_jobs_per_s"] / result["sql_ceiling"]["lifecycle_per_s"]
                )
    return result


def table(results: dict[str, dict[str, Any]]) -> str:
    rows = [
        ("bulk enqueue (jobs/s)", lambda r: f"{r['bulk_enqueue_jobs_per_s']:,.0f}"),
        ("process, first start to last finish (jobs/s)",
         lambda r: f"{r['process_jobs_per_s']:,.0f}"),
        ("submit->start p50 / p99 (ms)",
         lambda r: f"{r['submit_to_start']['p50_ms']:.1f} / {r['submit_to_start']['p99_ms']:.1f}"),
        ("single submits, 50 clients (jobs/s)",
         lambda r: f"{r['single_submit']['jobs_per_s']:,.0f}"),
        ("single submit p50 / p99 (ms)",
         lambda r: f"{r['single_submit']['p50_ms']:.1f} / {r['single_submit']['p99_ms']:.1f}"),
        ("CPU per job: server / workers (ms)",
         lambda r: f"{r['cpu_ms_per_job']['server']:.3f} / {r['cpu_ms_per_job']['workers']:.3f}"),
        ("peak RSS: server / one worker (MB)",
         lambda r: f"{r['rss_mb']['server']:.0f} / {r['rss_mb']['workers']:.0f}"),
        ("SQL ceiling, same database (lifecycles/s)",
         lambda r: f"{r['sql_ceiling']['lifecycle_per_s']:,.0f}" if r.get("sql_ceiling") else "-"),
        ("process as share of the ceiling",
         lambda r: f"{r['share_of_ceiling']:.0%}" if r.get("share_of_ceiling") else "-"),
    ]  # fmt: skip
    for waiting in ("10000", "1000000"):
        if any(waiting in r.get("lease_latency", {}) for r in results.values()):
            rows.append((
                f"LeaseJobs(10) p50 / p99 with {int(waiting):,} queued (ms)",
                lambda r, w=waiting: (
                    f"{r['lease_latency'][w]['p50_ms']:.1f} / {r['lease_latency'][w]['p99_ms']:.1f}"
                    if w in r.get("lease_latency", {}) else "-"
                ),
            ))  # fmt: skip
    width = max(len(name) for name, _ in rows)
    lines = [f"{'':<{width}}  " + "  ".join(f"{s:>14}" for s in results)]
    for name, cell in rows:
        lines.append(f"{name:<{width}}  " + "  ".join(f"{cell(r):>14}" for r in results.values()))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=("both", "sqlite", "postgres"), default="both")
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=500)
    parser.add_argument("--samples", type=int, default=200, help="submit->start samples")
    parser.add_argument("--single", type=int, default=5000, help="single submits in all")
    parser.add_argument("--queued", type=int, default=0, help="lease latency with N queued")
    parser.add_argument("--database-url", default="", help="PostgreSQL to use instead")
    parser.add_argument("--ceiling", default=str(CEILING), help="pg_ceiling.py to run")
    parser.add_argument("--json", default=str(ROOT / ".jq" / "bench.json"))
    parser.add_argument(
        "--limits", action="store_true", help="rate-limit and coordination figures instead"
    )
    parser.add_argument("--rate", type=float, default=200.0, help="--limits: jobs/s limit")
    parser.add_argument("--burst", type=int, default=0, help="--limits: burst (0: rate x 1 s)")
    args = parser.parse_args()
    if args.limits:
        from benchmarks import limits

        limits.report(limits.run(args), str(Path(args.json).with_name("bench-limits.json")))
        return

    stores = ("sqlite", "postgres") if args.store == "both" else (args.store,)
    results = {store: run_store(store, args) for store in stores}
    print(table(results))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"args": vars(args), "results": results}, indent=1))
    print(f"(every figure as JSON: {args.json})")


if __name__ == "__main__":
    main()
