"""What needs a real database session: the leader lock and LISTEN for new work.

Both use a direct connection (JQ_DATABASE_DIRECT_URL), never the pool: through PgBouncer in
transaction mode a session advisory lock or a LISTEN would land on whichever server
connection the next transaction gets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import psycopg

from jobq.store.postgres.credentials import DatabaseCredentials, StaticCredentials
from jobq.store.postgres.db import connection_class
from jobq.store.postgres.queries import WORK_CHANNEL

log = logging.getLogger("jobq.store.postgres")

LEADER_KEY = 0x6A6F6271  # "jobq": the advisory lock key for singleton work


class PgLeaderLock:
    """Held while this process's session holds a PostgreSQL advisory lock.

    The lock dies with the session, so a leader killed with SIGKILL frees it as soon as
    PostgreSQL notices the closed connection, and another replica takes it on its next try.
    """

    def __init__(
        self,
        direct_url: str,
        credentials: DatabaseCredentials | None = None,
        key: int = LEADER_KEY,
    ) -> None:
        self._url = direct_url
        self._credentials = credentials or StaticCredentials()
        self._key = key
        self._conn: psycopg.AsyncConnection[tuple[Any, ...]] | None = None
        self._held = False

    @property
    def held(self) -> bool:
        return self._held

    async def try_acquire(self) -> bool:
        """True while this replica is the leader; cheap to call every scheduler tick."""
        try:
            if self._conn is None or self._conn.closed:
                self._held = False
                self._conn = await connect_direct(self._url, self._credentials)
            if self._held:
                await self._conn.execute("SELECT 1")
                return True
            cur = await self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self._key,))
            row = await cur.fetchone()
            self._held = bool(row and row[0])
            if self._held:
                log.info("became the leader for singleton work")
            return self._held
        except psycopg.Error as exc:
            if self._held:
                log.warning("lost the leader lock: %s", exc)
            self._held = False
            await self._drop()
            return False

    async def release(self) -> None:
        if self._conn is not None and self._held:
            with contextlib.suppress(psycopg.Error):
                await self._conn.execute("SELECT pg_advisory_unlock(%s)", (self._key,))
        self._held = False
        await self._drop()

    async def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                await self._conn.close()
            self._conn = None


async def connect_direct(
    url: str, credentials: DatabaseCredentials
) -> psycopg.AsyncConnection[tuple[Any, ...]]:
    """A session of our own, with the same credentials (and rotation) as the pool."""
    options: dict[str, Any] = {"autocommit": True, "prepare_threshold": None, "connect_timeout": 5}
    options |= await credentials.connection_kwargs()
    conn: psycopg.AsyncConnection[tuple[Any, ...]] = await connection_class(credentials).connect(
        url, **options
    )
    return conn


async def listen_for_work(
    direct_url: str,
    on_work: Callable[[], None],
    credentials: DatabaseCredentials | None = None,
    origin: str = "",
) -> None:
    """LISTEN on the work channel until cancelled, reconnecting after failures.

    A notification this server sent itself (`origin` first in its payload) is skipped: the
    server already woke its own long-polls when it committed, and waking them again
    would only send them to look for work that is gone.
    """
    credentials = credentials or StaticCredentials()
    delay = 0.5
    while True:
        try:
            conn = await connect_direct(direct_url, credentials)
            async with conn:
                await conn.execute(f"LISTEN {WORK_CHANNEL}")
                delay = 0.5
                on_work()  # anything submitted while we were not listening
                async for note in conn.notifies():
                    if not origin or note.payload.split(" ", 1)[0] != origin:
                        on_work()
        except psycopg.Error as exc:
            log.warning("LISTEN connection lost, retrying in %.1fs: %s", delay, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
