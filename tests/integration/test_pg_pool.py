"""The pool's checkout policy: no check query for a connection just returned, a check for one
that sat idle. A busy server pays no extra round trip per transaction; a connection the
database dropped while it sat idle is replaced before a request gets it."""

from __future__ import annotations

import psycopg
import psycopg_pool
import pytest

from jobq.store.postgres import db as pgdb
from jobq.store.postgres.db import PgDb


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every check query the pool sends, counted (the real check still runs)."""
    seen: list[object] = []
    real = psycopg_pool.AsyncConnectionPool.check_connection

    async def counted(conn: psycopg.AsyncConnection) -> None:
        seen.append(conn)
        await real(conn)

    monkeypatch.setattr(psycopg_pool.AsyncConnectionPool, "check_connection", counted)
    return seen


async def test_a_busy_connection_is_reused_without_a_check_query(pg_databases, checks) -> None:
    db = PgDb(pg_databases.create(), min_size=1, max_size=1)
    await db.open()
    try:
        for _ in range(50):
            async with db.tx() as conn:
                await conn.execute("SELECT 1")
        assert len(checks) <= 1  # the fresh connection's first checkout only
    finally:
        await db.close()


async def test_an_idle_connection_killed_by_the_server_is_replaced_before_use(
    pg_databases, checks, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pgdb, "CHECK_IDLE_AFTER", 0.0)  # every connection counts as idle
    url = pg_databases.create()
    db = PgDb(url, min_size=1, max_size=1)
    await db.open()
    try:
        async with db.tx() as conn:
            pid = (await (await conn.execute("SELECT pg_backend_pid() AS pid")).fetchone())["pid"]
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as admin:
            await admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        # The request that comes next gets a working connection, not an error.
        async with db.tx() as conn:
            row = await (await conn.execute("SELECT pg_backend_pid() AS pid")).fetchone()
        assert row["pid"] != pid
        assert checks
    finally:
        await db.close()
