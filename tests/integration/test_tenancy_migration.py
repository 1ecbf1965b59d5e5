"""Migration 0004 upgrades a database with rows in it, on both stores: rows from before
tenancy belong to tenant "default", and a job that named a queue of another tenant gets its
own tenant's copy of that queue, so no row is lost and every job's (tenant, queue) exists."""

from __future__ import annotations

import random
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from jobq.core.model import QueueConfig
from jobq.store.migrations import apply_migrations, migrations_dir
from jobq.store.postgres import PostgresStore, yoyo_url
from jobq.store.sqlite import SqliteStore
from tests.conftest import T0

BEFORE_TENANCY = ("0001_initial.sql", "0002_store_probe.sql")

# Written as the 0002 schema allowed: the queue row's tenant is "default" while one job
# of it says "acme" (what a submit with tenant "acme" stored before 0004).
LEGACY_ROWS = [
    "INSERT INTO queues (name, paused, weight, max_attempts, {durations}, created_at,"
    " updated_at) VALUES ('emails', {false}, 7, 4, {values}, {now}, {now})",
    "INSERT INTO jobs (id, queue, tenant, type, payload, state, max_attempts, run_at,"
    " created_at, updated_at) VALUES"
    " ('01a00000-0000-7000-8000-000000000001', 'emails', 'default', 'echo', '{{}}', 'queued',"
    " 4, {now}, {now}, {now}),"
    " ('01a00000-0000-7000-8000-000000000002', 'emails', 'acme', 'echo', '{{}}', 'queued',"
    " 4, {now}, {now}, {now})",
    "INSERT INTO job_events (id, job_id, queue, kind, to_state, attempt, at) VALUES"
    " ('01a00000-0000-7000-8000-0000000000e2', '01a00000-0000-7000-8000-000000000002',"
    " 'emails', 'submitted', 'queued', 0, {now})",
    "INSERT INTO workers (id, hostname, queues, capacity, state, started_at, last_heartbeat)"
    " VALUES ('w-old', 'h', {queues}, 1, 'active', {now}, {now})",
]
PG = {
    "durations": "backoff_base, backoff_max, lease_timeout, retention",
    "values": "'1s', '1h', '30s', '7d'",
    "false": "false",
    "now": "now()",
    "queues": "'{emails}'",
}
SQLITE = {
    "durations": "backoff_base_us, backoff_max_us, lease_timeout_us, retention_us",
    "values": "1000000, 3600000000, 30000000, 604800000000",
    "false": "0",
    "now": "1767268800000000",
    "queues": """'["emails"]'""",
}


def first_migrations(dialect: str, tmp_path: Path) -> Path:
    folder = tmp_path / f"{dialect}-before"
    folder.mkdir()
    for name in BEFORE_TENANCY:
        shutil.copy(migrations_dir(dialect) / name, folder / name)
    return folder


def legacy_database(
    dialect: str, request: pytest.FixtureRequest, tmp_path: Path
) -> tuple[str, Callable[[str], list[Any]], Any]:
    """A database at 0002 holding LEGACY_ROWS: its store URL, a query function, a store."""
    defaults = QueueConfig(name="default")
    if dialect == "sqlite":
        path = tmp_path / "jobq.db"
        url = f"sqlite:///{path}"
        apply_migrations(url, first_migrations("sqlite", tmp_path))
        with sqlite3.connect(path) as conn:
            for sql in LEGACY_ROWS:
                conn.execute(sql.format(**SQLITE))

        def query(sql: str) -> list[Any]:
            with sqlite3.connect(path) as conn:
                return [tuple(r) for r in conn.execute(sql).fetchall()]

        return url, query, SqliteStore(path, defaults, rng=random.Random(1))
    import psycopg

    server = request.getfixturevalue("pg_server")
    name = f"jobq_legacy_{tmp_path.name[-20:].replace('-', '_').lower()}"
    server.execute(f"CREATE DATABASE {name}")
    url = server.url(name)
    apply_migrations(yoyo_url(url), first_migrations("postgres", tmp_path))
    with psycopg.connect(url, autocommit=True) as conn:
        for sql in LEGACY_ROWS:
            conn.execute(sql.format(**PG))  # type: ignore[arg-type]

    def pg_query(sql: str) -> list[Any]:
        with psycopg.connect(url, autocommit=True) as conn:
            return [tuple(r) for r in conn.execute(sql).fetchall()]  # type: ignore[arg-type]

    return url, pg_query, PostgresStore(url, defaults, pool_min=1, pool_max=2)


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
async def test_0004_keeps_every_row_and_gives_each_jobs_tenant_its_queue(
    dialect: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    _, query, store = legacy_database(dialect, request, tmp_path)
    await store.migrate()
    assert query("SELECT tenant, name, weight, max_attempts FROM queues ORDER BY tenant") == [
        ("acme", "emails", 7, 4),
        ("default", "emails", 7, 4),
    ], "acme's job got a copy of its queue, with the same settings"
    assert query("SELECT tenant FROM job_events") == [("acme",)], "events take their job's"
    assert query("SELECT tenant, subject FROM workers") == [("default", "")]
    await store.open()
    try:
        acme = await store.jobs.get("01a00000-0000-7000-8000-000000000002", tenant="acme")
        assert acme is not None and acme.queue == "emails"
        assert await store.jobs.get("01a00000-0000-7000-8000-000000000001", tenant="acme") is None
        stats = await store.queues.stats("emails", T0, tenant=None)
        assert [(s.tenant, s.by_state["queued"]) for s in stats] == [("acme", 1), ("default", 1)]
    finally:
        await store.close()
