"""Lease-time limits under load (ADR 0017), with real jq-server/jq-worker processes on one
PostgreSQL and a real Redis:

    make bench BENCH_ARGS="--limits"
    make bench BENCH_ARGS="--limits --jobs 5000 --rate 200 --burst 20"

- rate: 2 server replicas and 4 workers (2 per replica), a queue limited to `--rate` jobs/s
  with a backlog of `--jobs`: jobs started in each full 10 s window from the first start,
  and the largest deviation from the limit;
- coordination: process throughput (first start to last finish) of `--jobs` jobs on a
  queue with no limits, one server with JQ_REDIS_URL set and one without.

Figures, not pass/fail: the run prints them and writes them as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import json
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.e2e import QUEUE, Cluster, database, free_port, process, wait_ready
from jobq import AsyncClient

WINDOW = 10.0


@dataclasses.dataclass
class Replicas(Cluster):
    """Cluster with extra environment and, optionally, a second server replica; workers
    alternate between the replicas."""

    extra: dict[str, str] = dataclasses.field(default_factory=dict)
    replicas: int = 1
    more: list[tuple[int, Any]] = dataclasses.field(default_factory=list)

    def env(self) -> dict[str, str]:
        return super().env() | self.extra

    def start_server(self) -> None:
        super().start_server()
        import subprocess

        from benchmarks.e2e import BIN

        for _ in range(self.replicas - 1):
            grpc, http = free_port(), free_port()
            env = self.env() | {"JQ_GRPC_PORT": str(grpc), "JQ_HTTP_PORT": str(http)}
            proc = subprocess.Popen([str(BIN / "jq-server")], env=env)
            wait_ready(http, "jq-server replica")
            self.more.append((grpc, proc))

    def start_workers(self) -> None:
        import subprocess

        from benchmarks.e2e import BIN, ROOT

        addresses = [self.address] + [f"127.0.0.1:{g}" for g, _ in self.more]
        for n in range(self.workers):
            port = free_port()
            env = self.env() | {
                "JQ_WORKER_HTTP_PORT": str(port),
                "JQ_SERVER_ADDRESS": addresses[n % len(addresses)],
            }
            self.worker_procs.append(
                subprocess.Popen(
                    [str(BIN / "jq-worker"), "--tasks", "benchmarks.tasks"], env=env, cwd=ROOT
                )
            )
            wait_ready(port, "jq-worker")

    def stop(self) -> None:
        super().stop()
        for _, proc in self.more:
            proc.terminate()
            proc.wait(30)


async def started_times(client: AsyncClient) -> list[dt.datetime]:
    out, token = [], ""
    while True:
        page = await client.list(queue=QUEUE, page_size=1000, page_token=token)
        out += [j.started_at for j in page.jobs if j.started_at]
        token = page.next_page_token
        if not token:
            return sorted(out)


async def rate_run(cluster: Replicas, jobs: int, rate: float, burst: int) -> dict[str, Any]:
    async with AsyncClient(cluster.address, timeout=300, token=cluster.key) as client:
        await client.create_queue(QUEUE, rate_limit=rate, rate_burst=burst)
        await client.submit_many({"type": "noop", "queue": QUEUE} for _ in range(jobs))
        cluster.start_workers()
        while True:
            (stats,) = await client.queue_stats(QUEUE)
            if stats.by_state.get("succeeded", 0) >= jobs:
                break
            await asyncio.sleep(0.2)
        starts = await started_times(client)
    first = starts[0]
    windows: list[int] = []
    for at in starts:
        index = int((at - first).total_seconds() // WINDOW)
        windows += [0] * (index + 1 - len(windows))
        windows[index] += 1
    full = [n / WINDOW for n in windows[:-1]]  # the last window is cut short by the backlog
    return {
        "limit_per_s": rate,
        "burst": burst,
        "per_window_per_s": full,
        "worst_deviation": max((abs(r - rate) / rate for r in full), default=None),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from tests.harness.redis import redis_server

    results: dict[str, Any] = {}
    with redis_server() as redis:
        for label, extra in (
            ("coordination_off", {}),
            ("coordination_on", {"JQ_REDIS_URL": redis.url}),
        ):
            with (
                tempfile.TemporaryDirectory(prefix="jq-bench-") as tmp,
                database("postgres", Path(tmp), args.database_url) as url,
            ):
                cluster = Replicas(url, args.workers, args.concurrency, Path(tmp), extra=extra)
                try:
                    cluster.start_server()
                    results[label] = asyncio.run(_throughput(cluster, args.jobs, args.batch))
                finally:
                    cluster.stop()
            redis.flush()
        off = results["coordination_off"]["process_jobs_per_s"]
        on = results["coordination_on"]["process_jobs_per_s"]
        results["coordination_on_vs_off"] = on / off
        with (
            tempfile.TemporaryDirectory(prefix="jq-bench-") as tmp,
            database("postgres", Path(tmp), args.database_url) as url,
        ):
            cluster = Replicas(
                url, 4, args.concurrency, Path(tmp), extra={"JQ_REDIS_URL": redis.url}, replicas=2
            )
            try:
                cluster.start_server()
                burst = args.burst or max(1, round(args.rate))  # default: one second's worth
                results["rate"] = asyncio.run(rate_run(cluster, args.jobs, args.rate, burst))
            finally:
                cluster.stop()
    return results


async def _throughput(cluster: Replicas, jobs: int, batch: int) -> dict[str, Any]:
    async with AsyncClient(cluster.address, timeout=300, token=cluster.key) as client:
        cluster.start_workers()
        return await process(client, cluster, jobs, batch)


def report(results: dict[str, Any], path: str) -> None:
    rate = results["rate"]
    print(
        f"rate limit {rate['limit_per_s']:g}/s burst {rate['burst']}, 2 replicas, 4 workers, "
        "10 s windows:"
    )
    print("  started/s per window: " + ", ".join(f"{r:.1f}" for r in rate["per_window_per_s"]))
    if rate["worst_deviation"] is not None:
        print(f"  worst deviation from the limit: {rate['worst_deviation']:.1%}")
    print(
        "throughput without limits, coordination off / on (jobs/s): "
        f"{results['coordination_off']['process_jobs_per_s']:,.0f} / "
        f"{results['coordination_on']['process_jobs_per_s']:,.0f} "
        f"(on = {results['coordination_on_vs_off']:.0%} of off)"
    )
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(results, indent=1))
    print(f"(every figure as JSON: {path})")
