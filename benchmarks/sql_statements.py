"""SQL statements per job on the store's hot paths, counted by PostgreSQL itself.

    .venv/bin/python -m benchmarks.sql_statements [--batch 500] [--singles 200]

Starts a throwaway PostgreSQL with pg_stat_statements, drives the store directly (no
server, so no per-call worker check and no pool traffic but the store's own) and prints,
for each path, the statements PostgreSQL ran per job (per call for heartbeats): BEGIN and
COMMIT apart from the rest. `executemany` counts once per row, as PostgreSQL sees it.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psycopg

from jobq.core.model import LeaseRef, Outcome, OutcomeKind, QueueConfig, WorkerInfo, WorkerState
from jobq.core.validation import JobSpec, Limits, validate_job
from jobq.ids import new_id
from jobq.store.postgres import PostgresStore
from tests.harness.services import PostgresServer

UTILITY = ("BEGIN", "COMMIT", "ROLLBACK")


async def counted(dsn: str, run: Callable[[], Awaitable[Any]]) -> dict[str, int]:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("SELECT pg_stat_statements_reset()")
        await run()
        cur = await conn.execute(
            "SELECT query, calls FROM pg_stat_statements WHERE dbid ="
            " (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        rows = await cur.fetchall()
    tx = sum(c for q, c in rows if q.strip().upper() in UTILITY)
    other = sum(
        c for q, c in rows if q.strip().upper() not in UTILITY and "pg_stat_statements" not in q
    )
    return {"statements": other, "begin_commit": tx}


def start_server() -> PostgresServer:
    server = PostgresServer(Path(tempfile.mkdtemp(prefix="jq-stmts-")))
    server.start()
    with open(server.data / "postgresql.conf", "a") as conf:
        conf.write("\nshared_preload_libraries = 'pg_stat_statements'\n")
    server.stop()
    server.launch()
    server.execute("CREATE DATABASE bench")
    return server


async def main(server: PostgresServer, batch: int, singles: int) -> dict[str, Any]:
    dsn = server.url("bench")
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("CREATE EXTENSION pg_stat_statements")
    store = PostgresStore(dsn, QueueConfig(name="default"), pool_min=1, pool_max=2)
    await store.migrate()
    await store.open()
    now = dt.datetime.now(dt.UTC)
    limits = Limits()

    def jobs(n: int) -> list[Any]:
        return [
            validate_job(JobSpec(type="noop", queue="q"), now=now, limits=limits, new_id=new_id)
            for _ in range(n)
        ]

    await store.workers.register(WorkerInfo("w", "h", ("q",), 10, WorkerState.ACTIVE, now, now))
    await store.jobs.submit(jobs(1), now)  # the queue exists from here on
    leased: list[Any] = []

    async def lease() -> None:
        leased.extend(await store.jobs.lease("w", ["q"], batch, now))

    async def singles_run() -> None:
        for _ in range(singles):
            await store.jobs.submit(jobs(1), now)

    refs = lambda: [LeaseRef(j.id, j.attempt) for j in leased]  # noqa: E731
    paths: list[tuple[str, int, Callable[[], Awaitable[Any]]]] = [
        ("bulk submit", batch, lambda: store.jobs.submit(jobs(batch), now)),
        ("lease", batch + 1, lease),
        ("heartbeat (per call)", 1, lambda: store.jobs.heartbeat("w", refs(), now)),
        (
            "outcomes",
            batch + 1,
            lambda: store.jobs.report(
                "w", [Outcome(r, OutcomeKind.COMPLETED, result="1") for r in refs()], now
            ),
        ),
        ("single submit", singles, singles_run),
    ]
    figures: dict[str, Any] = {}
    for name, per, run in paths:
        c = await counted(dsn, run)
        per_job = {f"{k}_per_job": round(v / per, 3) for k, v in c.items()}
        figures[name] = {"in_all": c} | per_job
    await store.close()
    figures["unary Submit RPC (server)"] = await through_server(dsn, singles)
    return figures


async def through_server(dsn: str, calls: int) -> dict[str, Any]:
    """Unary Submit calls through a real in-process jq-server on the same database: what a
    client's Submit costs, pool checks and Submit's worker check included. The scheduler's
    loops are slowed to one round an hour, so what is counted is the calls'."""
    from jobq import AsyncClient
    from jobq.auth.keys import bootstrap_entry, new_key
    from jobq.auth.principal import Role
    from jobq.config import ServerSettings
    from jobq.server.app import ServerApp

    key = new_key()[2]
    settings = ServerSettings(
        grpc_port=0,
        http_port=0,
        database_url=dsn,
        scheduler_interval=dt.timedelta(hours=1),
        auth_bootstrap_keys=f"[{bootstrap_entry(key, '*', [Role.SUBMITTER], [])}]",
    )
    app = ServerApp(settings)
    await app.start()
    try:
        async with AsyncClient(f"127.0.0.1:{app.grpc_port}", token=key) as client:
            await client.submit("noop", None, queue="q")  # pool and queue warm

            async def run() -> None:
                for _ in range(calls):
                    await client.submit("noop", None, queue="q")

            c = await counted(dsn, run)
    finally:
        await app.stop()
    return {"in_all": c} | {f"{k}_per_job": round(v / calls, 3) for k, v in c.items()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--singles", type=int, default=200)
    args = parser.parse_args()
    random.seed(1)
    pg = start_server()
    try:
        print(json.dumps(asyncio.run(main(pg, args.batch, args.singles)), indent=2))
    finally:
        pg.stop()
