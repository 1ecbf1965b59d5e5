"""The embedded store: one SQLite file, no server to run."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from pathlib import Path

from jobq.core.errors import StoreUnavailable
from jobq.core.model import QueueConfig
from jobq.store.base import AlwaysLeader
from jobq.store.migrations import apply_migrations, migrations_dir, pending_migrations
from jobq.store.sqlite.db import SqliteDb
from jobq.store.sqlite.events import SqliteEventLog
from jobq.store.sqlite.jobs import SqliteJobs
from jobq.store.sqlite.queues import SqliteQueues
from jobq.store.sqlite.workers import SqliteWorkers

__all__ = ["SqliteStore"]


class SqliteStore:
    def __init__(
        self,
        path: Path,
        queue_defaults: QueueConfig,
        *,
        migrations_root: Path | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.path = path
        self._migrations = migrations_dir("sqlite", migrations_root)
        self._db = SqliteDb(path)
        self.jobs = SqliteJobs(self._db, queue_defaults, rng or random.Random())
        self.queues = SqliteQueues(self._db)
        self.workers = SqliteWorkers(self._db)
        self.events = SqliteEventLog(self._db)
        self.leader = AlwaysLeader()

    @property
    def _url(self) -> str:
        return f"sqlite:///{self.path}"

    async def migrate(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(apply_migrations, self._url, self._migrations)

    async def migrations_pending(self) -> int:
        return await asyncio.to_thread(pending_migrations, self._url, self._migrations)

    async def open(self) -> None:
        await self._db.open()

    async def close(self) -> None:
        await self._db.close()

    async def listen(self, on_work: Callable[[], None]) -> None:
        """One server owns the file, so every change is already seen in-process."""
        await asyncio.Event().wait()

    async def ping(self) -> None:
        async with self._db.read() as conn:
            try:
                await conn.execute("SELECT 1 FROM queues LIMIT 1")
            except Exception as exc:
                raise StoreUnavailable(f"SQLite store not usable: {exc}") from exc
