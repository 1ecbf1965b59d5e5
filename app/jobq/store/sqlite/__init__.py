"""The embedded store: one SQLite file, no server to run."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from jobq.core.errors import StoreUnavailable
from jobq.core.model import QueueConfig
from jobq.store.base import AlwaysLeader
from jobq.store.migrations import apply_migrations, migrations_dir, pending_migrations
from jobq.store.sql.events import SqlEventLog
from jobq.store.sql.jobs import SqlJobs
from jobq.store.sql.keys import SqlApiKeys
from jobq.store.sql.queues import SqlQueues
from jobq.store.sql.schedules import SqlSchedules
from jobq.store.sql.workers import SqlWorkers
from jobq.store.sql.workflows import SqlWorkflows
from jobq.store.sqlite.db import SqliteDb
from jobq.store.sqlite.dialect import SqliteDialect
from jobq.store.sqlite.lock import FileLock

__all__ = ["SqliteStore"]


class SqliteStore:
    def __init__(
        self,
        path: Path,
        queue_defaults: QueueConfig,
        *,
        migrations_root: Path | None = None,
        rng: random.Random | None = None,
        exclusive: bool = True,
    ) -> None:
        """`exclusive=False`: no server lock, for a tool that only inspects a served file."""
        self.path = path
        self._migrations = migrations_dir("sqlite", migrations_root)
        self._db = SqliteDb(path)
        self._lock = FileLock(path) if exclusive else None
        dialect = SqliteDialect(self._db)
        self.jobs = SqlJobs(dialect, queue_defaults, rng or random.Random())
        self.queues = SqlQueues(dialect)
        self.workers = SqlWorkers(dialect)
        self.events = SqlEventLog(dialect)
        self.schedules = SqlSchedules(dialect)
        self.api_keys = SqlApiKeys(dialect)
        self.workflows = SqlWorkflows(dialect, queue_defaults)
        self.leader = AlwaysLeader()

    @property
    def _url(self) -> str:
        return f"sqlite:///{self.path}"

    async def migrate(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(f"cannot create {self.path.parent}: {exc.strerror}") from None
        if self._lock is not None:
            self._lock.acquire()
        try:
            # yoyo writes its lock table even when nothing is pending, and takes a refused
            # write for another migrator's lock (10 s, then a traceback): ask first.
            await asyncio.to_thread(_check_writable, self.path)
            await asyncio.to_thread(apply_migrations, self._url, self._migrations)
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise StoreUnavailable(f"cannot migrate SQLite database {self.path}: {first}") from exc

    async def migrations_pending(self) -> int:
        return await asyncio.to_thread(pending_migrations, self._url, self._migrations)

    async def open(self) -> None:
        if self._lock is not None:
            self._lock.acquire()
        await self._db.open()

    async def close(self) -> None:
        await self._db.close()
        if self._lock is not None:
            self._lock.release()

    async def listen(self, on_work: Callable[[], None]) -> None:
        """One server owns the file, so every change is already seen in-process."""
        await asyncio.Event().wait()

    async def ping(self) -> None:
        """A committed one-row write: a file that reads but cannot be written is not ready."""
        try:
            async with self._db.tx() as conn:
                await conn.execute(
                    "UPDATE store_probe SET probed_at = ? WHERE id = 1", (time.time_ns() // 1000,)
                )
        except (StoreUnavailable, sqlite3.Error) as exc:
            cause = exc.__cause__ or exc
            raise StoreUnavailable(f"SQLite store does not accept writes: {cause}") from None


def _check_writable(path: Path) -> None:
    """Raise sqlite3.Error when the file refuses a write; leaves the file as it was."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=5.0)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("CREATE TABLE _jobq_write_check (x INTEGER)")  # rolled back below
        conn.execute("ROLLBACK")
    finally:
        conn.close()
