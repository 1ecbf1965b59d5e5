"""One SQLite connection, its transactions, and the translation of driver errors."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite

from jobq.core.errors import StoreUnavailable

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MICRO = dt.timedelta(microseconds=1)


def to_us(value: dt.datetime) -> int:
    return (value - EPOCH) // MICRO


def from_us(value: int) -> dt.datetime:
    return EPOCH + value * MICRO


def opt_to_us(value: dt.datetime | None) -> int | None:
    return None if value is None else to_us(value)


def opt_from_us(value: int | None) -> dt.datetime | None:
    return None if value is None else from_us(value)


def span_us(value: dt.timedelta) -> int:
    return value // MICRO


def opt_span_us(value: dt.timedelta | None) -> int | None:
    return None if value is None else span_us(value)


def opt_span(value: int | None) -> dt.timedelta | None:
    return None if value is None else value * MICRO


class SqliteDb:
    """Serialises transactions on one connection: SQLite has one writer anyway."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        if self._conn is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = await aiosqlite.connect(self.path, isolation_level=None)
            conn.row_factory = sqlite3.Row
            # WAL with synchronous=FULL: an OK from a commit survives a power loss.
            await conn.execute("PRAGMA journal_mode=WAL")
            await conn.execute("PRAGMA synchronous=FULL")
            await conn.execute("PRAGMA foreign_keys=ON")
            await conn.execute("PRAGMA busy_timeout=5000")
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open SQLite database {self.path}: {exc}") from exc
        self._conn = conn

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    @contextlib.asynccontextmanager
    async def tx(self, write: bool = True) -> AsyncIterator[aiosqlite.Connection]:
        """A transaction; BEGIN IMMEDIATE for writes so no other process interleaves."""
        if self._conn is None:
            raise StoreUnavailable("the store is not open")
        conn = self._conn
        async with self._lock:
            try:
                await conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"SQLite: {exc}") from exc
            try:
                yield conn
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):
                    await conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.OperationalError):
                    raise StoreUnavailable(f"SQLite: {exc}") from exc
                raise
            try:
                await conn.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    await conn.execute("ROLLBACK")
                raise StoreUnavailable(f"SQLite commit failed: {exc}") from exc

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self.tx(write=False) as conn:
            yield conn
