"""An in-process jq-server on SQLite or PostgreSQL, and a cheap fingerprint of its rows.

The fingerprint (row counts, the latest update of each table, the last event) tells whether a
request changed anything: every change to a job, queue, worker or schedule moves one of them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from jobq.config import ServerSettings
from jobq.server.app import ServerApp
from jobq.server.rpc_context import ServerInterceptor
from tests.auth_keys import BOOTSTRAP_KEYS

BACKENDS = ("sqlite", "postgres")

FINGERPRINT = """
SELECT (SELECT count(*) FROM jobs), (SELECT max(updated_at) FROM jobs),
       (SELECT count(*) FROM jobs WHERE cancel_requested),
       (SELECT count(*) FROM queues), (SELECT max(updated_at) FROM queues),
       (SELECT count(*) FROM workers), (SELECT max(last_heartbeat) FROM workers),
       (SELECT count(*) FROM workers WHERE state = 'active'),
       (SELECT max(seq) FROM job_events), (SELECT count(*) FROM job_events),
       (SELECT count(*) FROM schedules), (SELECT max(updated_at) FROM schedules),
       (SELECT count(*) FROM schedule_runs),
       (SELECT count(*) FROM workflows), (SELECT count(*) FROM job_dependencies)
"""


def database_url(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path}/jobq.db"
    return str(request.getfixturevalue("pg_databases").create())


def fingerprinter(url: str) -> tuple[Callable[[], tuple[Any, ...]], Callable[[], None]]:
    """A function returning the rows' fingerprint now, and one closing its connection."""
    if url.startswith("sqlite:///"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        return (lambda: tuple(conn.execute(FINGERPRINT).fetchone())), conn.close
    import psycopg

    pg = psycopg.connect(url, autocommit=True)

    def fingerprint() -> tuple[Any, ...]:
        row = pg.execute(FINGERPRINT).fetchone()
        assert row is not None
        return tuple(row)

    return fingerprint, pg.close


@contextlib.asynccontextmanager
async def running(
    url: str, interceptors: Sequence[ServerInterceptor] = (), **overrides: Any
) -> AsyncIterator[ServerApp]:
    """A server whose background loops stay idle during a test: nothing but the test's own
    requests changes a row, so a fingerprint that moved was moved by the request."""
    fields: dict[str, Any] = {
        "grpc_port": 0,
        "http_port": 0,
        "database_url": url,
        "scheduler_interval": dt.timedelta(hours=1),
        "retention_interval": dt.timedelta(hours=1),
        "shutdown_grace": dt.timedelta(seconds=1),
        "database_pool_min": 1,
        "database_pool_max": 4,
        "auth_bootstrap_keys": BOOTSTRAP_KEYS,
    } | overrides
    app = ServerApp(ServerSettings(**fields), interceptors=interceptors)
    await app.start()
    try:
        yield app
    finally:
        await app.stop()
