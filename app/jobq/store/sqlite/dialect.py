"""The dialect port on SQLite: one writer (which is all the locking there is), JSON for
lists, integer microseconds for times, nobody else to notify."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sqlite3
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import aiosqlite

from jobq.store.sql.port import JobQueries, Params, Row
from jobq.store.sqlite import queries
from jobq.store.sqlite.db import SqliteDb, from_us, opt_span, span_us, to_us
from jobq.store.sqlite.queries import SqliteWrite
from jobq.store.sqlite.rows import (
    api_key_from_row,
    event_from_row,
    held_from_row,
    job_from_row,
    leased_from_row,
    queue_from_row,
    worker_from_row,
)


def _value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return to_us(value)
    if isinstance(value, dt.timedelta):
        return span_us(value)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, separators=(",", ":"))
    return value


def _encode(params: Params) -> dict[str, Any]:
    return {k: _value(v) for k, v in params.items()}


class SqliteDialect:
    q: JobQueries = queries
    unique_violation: tuple[type[Exception], ...] = (sqlite3.IntegrityError,)

    def __init__(self, db: SqliteDb) -> None:
        self._db = db

    @contextlib.asynccontextmanager
    async def tx(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._db.tx() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._db.read() as conn:
            yield conn

    async def fetch(
        self, conn: aiosqlite.Connection, query: str | tuple[str, ...], params: Params
    ) -> list[Row]:
        """A tuple is a script: every statement but the last only writes."""
        values = _encode(params)
        *first, last = (query,) if isinstance(query, str) else query
        for statement in first:
            await conn.execute(statement, values)
        cursor = await conn.execute(last, values)
        return list(await cursor.fetchall())

    async def execute(self, conn: aiosqlite.Connection, query: str, params: Params) -> int:
        cursor = await conn.execute(query, _encode(params))
        changed: int = cursor.rowcount
        return changed

    async def write(
        self,
        conn: aiosqlite.Connection,
        query: SqliteWrite,
        params: Params,
        **tables: Sequence[Mapping[str, Any]],
    ) -> None:
        common = _encode(params)
        encoded: dict[str, list[dict[str, Any]]] = {}  # a table two steps read, encoded once
        for table, statement in query.steps:
            if table not in encoded:
                encoded[table] = [_encode(row) | common for row in tables.get(table, ())]
            if encoded[table]:
                await conn.executemany(statement, encoded[table])

    async def lock_queue(self, conn: aiosqlite.Connection, tenant: str, name: str) -> None:
        return None  # the write transaction already excludes every other writer

    def valid_id(self, value: str) -> bool:
        return True  # ids are text here: a malformed one simply matches nothing

    def decode_time(self, value: Any) -> Any:
        return None if value is None else from_us(value)

    def decode_span(self, value: Any) -> Any:
        return opt_span(value)

    # Rows to domain objects: the dialect's own decoders (times, JSON, arrays differ).
    job = staticmethod(job_from_row)
    leased = staticmethod(leased_from_row)
    held = staticmethod(held_from_row)
    queue = staticmethod(queue_from_row)
    event = staticmethod(event_from_row)
    worker = staticmethod(worker_from_row)
    api_key = staticmethod(api_key_from_row)
