"""The production store: PostgreSQL 15+ through psycopg 3, PgBouncer-friendly."""

from __future__ import annotations

import asyncio
import random
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import psycopg

from jobq.core.errors import StoreUnavailable
from jobq.core.model import QueueConfig
from jobq.store.migrations import apply_migrations, migrations_dir, pending_migrations
from jobq.store.postgres.credentials import DatabaseCredentials, StaticCredentials
from jobq.store.postgres.db import PgDb
from jobq.store.postgres.dialect import PgDialect
from jobq.store.postgres.session import PgLeaderLock, connect_direct, listen_for_work
from jobq.store.sql.events import SqlEventLog
from jobq.store.sql.jobs import SqlJobs
from jobq.store.sql.keys import SqlApiKeys
from jobq.store.sql.queues import SqlQueues
from jobq.store.sql.schedules import SqlSchedules
from jobq.store.sql.workers import SqlWorkers
from jobq.store.sql.workflows import SqlWorkflows

__all__ = ["PostgresStore"]

# Readiness answers within a probe's timeout (Kubernetes: 1 s by default) instead of
# waiting the pool's 10 s for a connection while the database is down; a pool that
# cannot lend a connection for this long is not ready for traffic either.
PING_WAIT = 1.0


def yoyo_url(url: str, login: dict[str, str] | None = None) -> str:
    """yoyo names the psycopg 3 driver in the scheme and takes the login in the URL."""
    parts = urllib.parse.urlsplit(url)
    login = login or {}
    user = login.get("user", parts.username or "")
    password = login.get("password", parts.password or "")
    host = login.get("host", parts.hostname or "")
    port = login.get("port", str(parts.port) if parts.port else "")
    dbname = login.get("dbname", parts.path.lstrip("/"))
    auth = urllib.parse.quote(user, safe="")
    if password:
        auth += ":" + urllib.parse.quote(password, safe="")
    netloc = (f"{auth}@" if auth else "") + host + (f":{port}" if port else "")
    scheme = "postgresql+psycopg" if parts.scheme in ("postgresql", "postgres") else parts.scheme
    return urllib.parse.urlunsplit((scheme, netloc, "/" + dbname, parts.query, ""))


class PostgresStore:
    def __init__(
        self,
        url: str,
        queue_defaults: QueueConfig,
        *,
        direct_url: str | None = None,
        migrations_root: Path | None = None,
        pool_min: int = 2,
        pool_max: int = 20,
        credentials: DatabaseCredentials | None = None,
        acquire_timeout: float = 10.0,
        rng: random.Random | None = None,
    ) -> None:
        self.url = url
        self.direct_url = direct_url or url
        self._migrations = migrations_dir("postgres", migrations_root)
        self._credentials = credentials or StaticCredentials()
        self._db = PgDb(
            url,
            min_size=pool_min,
            max_size=pool_max,
            credentials=credentials,
            acquire_timeout=acquire_timeout,
        )
        rng = rng or random.Random()
        dialect = PgDialect(self._db)
        self.jobs = SqlJobs(dialect, queue_defaults, rng)
        self.queues = SqlQueues(dialect)
        self.workers = SqlWorkers(dialect)
        self.events = SqlEventLog(dialect)
        self.schedules = SqlSchedules(dialect)
        self.api_keys = SqlApiKeys(dialect)
        self.workflows = SqlWorkflows(dialect, queue_defaults)
        self.leader = PgLeaderLock(self.direct_url, self._credentials)

    async def migrate(self) -> None:
        # DDL needs a session (yoyo takes a lock table and runs each migration in a
        # transaction): always the direct URL, never through PgBouncer.
        try:
            url = yoyo_url(self.direct_url, await self._credentials.connection_kwargs())
            await asyncio.to_thread(apply_migrations, url, self._migrations)
        except Exception as exc:
            # One line for the operator (a refused connection, a read-only database), not
            # yoyo's traceback; the first line of the driver's message names the cause.
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StoreUnavailable(f"cannot migrate PostgreSQL: {first}") from exc

    async def grant_app_login(self, user: str, password: str) -> None:
        """Make `user` a login of the jobq_app role (migration 0010) with `password`.

        Run as the owner after migrating, so a new environment's app login works before any
        rotation ran, and so re-running it with the secret's current login changes nothing.
        Secrets Manager's alternating-users rotation creates and re-passwords the logins the
        same way afterwards; the password reaches the server only as a SCRAM verifier, so
        no statement log can show it.
        """
        from psycopg import sql

        try:
            async with await connect_direct(self.direct_url, self._credentials) as conn:
                me = await (await conn.execute("SELECT current_user")).fetchone()
                if me is not None and me[0] == user:
                    raise StoreUnavailable(
                        f"JQ_DATABASE_APP_USER {user!r} is the login migrations run as; "
                        "the application needs a login of its own"
                    )
                verifier = conn.pgconn.encrypt_password(
                    password.encode(), user.encode(), b"scram-sha-256"
                ).decode()
                found = await (
                    await conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,))
                ).fetchone()
                role = sql.Identifier(user)
                if found is None:
                    await conn.execute(
                        sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE jobq_app").format(
                            role, sql.Literal(verifier)
                        )
                    )
                else:
                    await conn.execute(
                        sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(
                            role, sql.Literal(verifier)
                        )
                    )
                    if user != "jobq_app":
                        await conn.execute(sql.SQL("GRANT jobq_app TO {}").format(role))
        except psycopg.Error as exc:
            raise StoreUnavailable(f"cannot set the app login {user!r}: {exc}") from None

    async def migrations_pending(self) -> int:
        url = yoyo_url(self.direct_url, await self._credentials.connection_kwargs())
        return await asyncio.to_thread(pending_migrations, url, self._migrations)

    async def open(self) -> None:
        await self._db.open()

    async def close(self) -> None:
        await self.leader.release()
        await self._db.close()

    async def ping(self) -> None:
        """A committed one-row write: a standby, a read-only default or a full disk is not ready."""
        try:
            async with self._db.tx(wait=PING_WAIT) as conn:
                await conn.execute("UPDATE store_probe SET probed_at = now() WHERE id = 1")
        except psycopg.Error as exc:
            raise StoreUnavailable(f"PostgreSQL does not accept writes: {exc}") from None

    async def listen(self, on_work: Callable[[], None]) -> None:
        await listen_for_work(self.direct_url, on_work, self._credentials, self._db.origin)
