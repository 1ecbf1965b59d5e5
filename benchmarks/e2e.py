"""End-to-end benchmark through the gRPC API with real jq-server and jq-worker processes.

    make bench                                  # embedded SQLite store
    make bench BENCH_ARGS="--store postgres"    # a throwaway PostgreSQL 15 (fsync on)
    make bench BENCH_ARGS="--jobs 50000 --workers 4 --database-url postgresql://..."

Prints submit throughput (batches of --batch), processing throughput (first submit to last
completion), and submit-to-start latency percentiles at light load (one job at a time).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from jobq import AsyncClient, JobState
from jobq.auth.keys import bootstrap_entry, new_key
from jobq.auth.principal import Role

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(os.environ.get("JQ_BENCH_BIN", Path(sys.executable).parent))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("jq-server did not become ready")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def submit_all(client: AsyncClient, jobs: int, batch: int) -> float:
    start = time.perf_counter()
    specs = ({"type": "noop", "queue": "bench", "payload": i} for i in range(jobs))
    await client.submit_many(specs, chunk=batch)
    return time.perf_counter() - start


async def wait_done(client: AsyncClient, total: int) -> None:
    while True:
        (stats,) = await client.queue_stats("bench")
        if stats.by_state.get("succeeded", 0) >= total:
            return
        await asyncio.sleep(0.05)


async def light_load_latency(client: AsyncClient, samples: int) -> list[float]:
    latencies = []
    for _ in range(samples):
        job = await client.submit("noop", None, queue="bench")
        done = await client.wait(job.id)
        assert done.state is JobState.SUCCEEDED and done.started_at is not None
        latencies.append((done.started_at - done.created_at).total_seconds() * 1000)
        await asyncio.sleep(0.02)
    return latencies


async def run(address: str, args: argparse.Namespace, key: str) -> None:
    async with AsyncClient(address, timeout=120, token=key) as client:
        start = time.perf_counter()
        submit_task = asyncio.create_task(submit_all(client, args.jobs, args.batch))
        submit_s = await submit_task
        await wait_done(client, args.jobs)
        process_s = time.perf_counter() - start
        latencies = await light_load_latency(client, args.samples)
    print(f"submit:     {args.jobs} jobs in {submit_s:.2f}s = {args.jobs / submit_s:,.0f} jobs/s "
          f"(SubmitBatch of {args.batch}, workers already leasing)")
    print(f"processing: {args.jobs} jobs submitted, run and acknowledged in {process_s:.2f}s = "
          f"{args.jobs / process_s:,.0f} jobs/s ({args.workers} workers x {args.concurrency})")
    print(f"submit-to-start at light load ({args.samples} jobs, one at a time): "
          f"p50 {percentile(latencies, 0.5):.1f} ms, p95 {percentile(latencies, 0.95):.1f} ms, "
          f"p99 {percentile(latencies, 0.99):.1f} ms, mean {statistics.fmean(latencies):.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=500)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="jq-bench-"))
        if args.store == "postgres" and not args.database_url:
            from tests.harness.services import postgres_server

            server = stack.enter_context(postgres_server(fsync=True))
            server.execute("CREATE DATABASE bench")
            args.database_url = server.url("bench")
        grpc_port, http_port = free_port(), free_port()
        address = f"127.0.0.1:{grpc_port}"
        # Measured with auth on, as production runs: one throw-away key with the three roles the
        # benchmark uses; the server holds only its hash.
        _, _, key = new_key()
        entry = bootstrap_entry(key, "*", [Role.SUBMITTER, Role.WORKER, Role.OPERATOR], [])
        env = os.environ | {
            "JQ_AUTH_BOOTSTRAP_KEYS": f"[{entry}]",
            "JQ_TOKEN": key,
            "JQ_DATABASE_URL": args.database_url or f"sqlite:///{tmp}/bench.db",
            "JQ_GRPC_PORT": str(grpc_port),
            "JQ_HTTP_PORT": str(http_port),
            "JQ_SERVER_ADDRESS": address,
            "JQ_LOG_LEVEL": "WARNING",
            "JQ_CONCURRENCY": str(args.concurrency),
        }
        procs = [subprocess.Popen([str(BIN / "jq-server")], env=env)]
        try:
            wait_ready(http_port)
            for _ in range(args.workers):
                worker_env = env | {"JQ_WORKER_HTTP_PORT": str(free_port())}
                procs.append(subprocess.Popen(
                    [str(BIN / "jq-worker"), "--tasks", "benchmarks.tasks"], env=worker_env,
                    cwd=ROOT,
                ))
            time.sleep(1.0)
            asyncio.run(run(address, args, key))
        finally:
            # Workers first, so they can release and deregister while the server is up.
            for proc in reversed(procs):
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()


if __name__ == "__main__":
    main()
