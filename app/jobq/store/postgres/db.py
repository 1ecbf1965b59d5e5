"""The PostgreSQL connection pool, its transactions, and the translation of driver errors.

PgBouncer in transaction pooling mode hands each transaction to any server connection, so
pooled connections carry no session state: no prepared statements, no SET, no LISTEN, no
session advisory locks. Those that need a session (LISTEN, the leader lock) open a direct
connection of their own (JQ_DATABASE_DIRECT_URL).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any, Self

import psycopg
import psycopg_pool
from psycopg import pq
from psycopg.rows import dict_row
from psycopg.types.string import TextLoader

from jobq.core.errors import JobqError, StoreUnavailable
from jobq.store.postgres.credentials import (
    DatabaseCredentials,
    StaticCredentials,
    is_auth_failure,
)

log = logging.getLogger("jobq.store.postgres")

Conn = psycopg.AsyncConnection[dict[str, Any]]

# A connection back in the pool for less than this is handed out again without the check
# query: under load every checkout would pay a round trip for it. One idle for longer, where
# a database restart or a dropped TCP connection goes unnoticed, is checked before use.
CHECK_IDLE_AFTER = 1.0  # seconds


async def _stamp_returned(conn: psycopg.AsyncConnection[Any]) -> None:
    conn._jq_returned_at = time.monotonic()  # type: ignore[attr-defined]


async def _check_if_idle(conn: psycopg.AsyncConnection[Any]) -> None:
    """The pool's check: raising discards the connection and takes another."""
    if conn.closed or conn.pgconn.status != pq.ConnStatus.OK:
        raise psycopg.OperationalError("the connection is closed")
    returned = getattr(conn, "_jq_returned_at", None)
    if returned is not None and time.monotonic() - returned < CHECK_IDLE_AFTER:
        return
    await psycopg_pool.AsyncConnectionPool.check_connection(conn)


async def _uuids_as_text(conn: psycopg.AsyncConnection[Any]) -> None:
    """uuid columns read as their canonical text, which is how the store holds ids: the
    text loader is native code, where a uuid.UUID and its str() are two Python calls per
    id (4 % of the server's samples at load)."""
    conn.adapters.register_loader("uuid", TextLoader)


def connection_kwargs() -> dict[str, Any]:
    # prepare_threshold=None: no server-side prepared statements (PgBouncer transaction mode).
    return {"prepare_threshold": None, "row_factory": dict_row, "autocommit": True}


def connection_class(credentials: DatabaseCredentials) -> type[psycopg.AsyncConnection[Any]]:
    """A connection class that re-reads rotated credentials once when the server rejects them."""

    class CredentialedConnection(psycopg.AsyncConnection[Any]):
        @classmethod
        async def connect(cls, conninfo: str = "", **kwargs: Any) -> Self:
            try:
                return await super().connect(conninfo, **kwargs)
            except psycopg.OperationalError as exc:
                if not is_auth_failure(exc):
                    raise
                log.warning("database rejected the credentials; reading them again")
                fresh = await credentials.refresh()
                return await super().connect(conninfo, **(kwargs | fresh))

    return CredentialedConnection


class PgDb:
    def __init__(
        self,
        url: str,
        *,
        min_size: int = 2,
        max_size: int = 20,
        credentials: DatabaseCredentials | None = None,
        acquire_timeout: float = 10.0,
    ) -> None:
        self.url = url
        self.credentials = credentials or StaticCredentials()
        # Names this server in the NOTIFY payloads it sends (see session.listen_for_work).
        self.origin = secrets.token_hex(8)

        async def kwargs() -> dict[str, Any]:
            return connection_kwargs() | await self.credentials.connection_kwargs()

        self.pool = psycopg_pool.AsyncConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            kwargs=kwargs,
            connection_class=connection_class(self.credentials),
            open=False,
            # How long a request waits for a connection before it fails UNAVAILABLE.
            timeout=acquire_timeout,
            configure=_uuids_as_text,
            check=_check_if_idle,
            reset=_stamp_returned,
            reconnect_timeout=3600.0,
            name="jobq",
        )

    async def open(self) -> None:
        try:
            await self.pool.open(wait=True, timeout=30.0)
        except psycopg_pool.PoolTimeout as exc:
            raise StoreUnavailable(f"cannot connect to PostgreSQL: {exc}") from exc

    async def close(self) -> None:
        await self.pool.close()

    @contextlib.asynccontextmanager
    async def tx(self, wait: float | None = None) -> AsyncIterator[Conn]:
        """One transaction on a pooled connection; driver errors become StoreUnavailable.

        `wait`: how long to wait for a connection (default: the pool's timeout).
        """
        try:
            async with self.pool.connection(wait) as conn, conn.transaction():
                yield conn
        except JobqError:
            raise
        except (psycopg.OperationalError, psycopg.InterfaceError, psycopg_pool.PoolTimeout) as exc:
            raise StoreUnavailable(f"PostgreSQL unavailable: {exc}") from exc
        except psycopg.errors.AdminShutdown as exc:  # pragma: no cover - a subclass above
            raise StoreUnavailable(f"PostgreSQL is shutting down: {exc}") from exc

    read = tx
