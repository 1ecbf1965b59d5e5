"""The dialect port on PostgreSQL: JSON row sets for batches, row locks, advisory locks,
NOTIFY."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import orjson
import psycopg

from jobq.core.bounds import is_job_id
from jobq.store.postgres import queries
from jobq.store.postgres.db import Conn, PgDb
from jobq.store.postgres.queries import PgWrite
from jobq.store.postgres.rows import (
    api_key_from_row,
    event_from_row,
    held_from_row,
    job_from_row,
    leased_from_row,
    queue_from_row,
    worker_from_row,
)
from jobq.store.sql.port import JobQueries, Params, Row


def _value(value: Any) -> Any:
    # JSON goes as text and is cast in the statement: arrays of it need no adapter.
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return value


def _json_default(value: Any) -> Any:
    # What orjson does not encode itself (it does datetimes, UUIDs, enums): an interval
    # as PostgreSQL's input syntax, exact to the microsecond.
    if isinstance(value, dt.timedelta):
        return f"{value // _MICROSECOND} microseconds"
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


_MICROSECOND = dt.timedelta(microseconds=1)


def rows_json(rows: Sequence[Mapping[str, Any]]) -> str:
    """A table's rows as one JSON array of objects: one C call for the whole batch, where a
    list parameter per column costs psycopg a Python call (and an escape) per element."""
    return orjson.dumps(
        rows if isinstance(rows, list) else list(rows), default=_json_default
    ).decode()


class PgDialect:
    q: JobQueries = queries
    unique_violation: tuple[type[Exception], ...] = (psycopg.errors.UniqueViolation,)

    def __init__(self, db: PgDb) -> None:
        self._db = db

    @contextlib.asynccontextmanager
    async def tx(self) -> AsyncIterator[Conn]:
        async with self._db.tx() as conn:
            yield conn

    read = tx

    async def fetch(self, conn: Conn, query: str, params: Params) -> list[Row]:
        cur = await conn.execute(query, {k: _value(v) for k, v in params.items()})
        return await cur.fetchall()

    async def execute(self, conn: Conn, query: str, params: Params) -> int:
        cur = await conn.execute(query, {k: _value(v) for k, v in params.items()})
        return cur.rowcount

    async def write(
        self, conn: Conn, query: PgWrite, params: Params, **tables: Sequence[Mapping[str, Any]]
    ) -> None:
        values = dict(params) | {"origin": self._db.origin}
        for table in query.tables:
            values[table] = rows_json(tables.get(table, ()))
        await conn.execute(query.sql, values)

    async def lock_queue(self, conn: Conn, tenant: str, name: str) -> None:
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"jobq-concurrency:{tenant}/{name}",)
        )

    def valid_id(self, value: str) -> bool:
        # Canonical form only: uuid.UUID takes `urn:uuid:` and braces, which the ::uuid
        # cast refuses.
        return is_job_id(value)

    def decode_time(self, value: Any) -> Any:
        return value

    def decode_span(self, value: Any) -> Any:
        return value

    # Rows to domain objects: the dialect's own decoders (times, JSON, arrays differ).
    job = staticmethod(job_from_row)
    leased = staticmethod(leased_from_row)
    held = staticmethod(held_from_row)
    queue = staticmethod(queue_from_row)
    event = staticmethod(event_from_row)
    worker = staticmethod(worker_from_row)
    api_key = staticmethod(api_key_from_row)
