"""The SQLite side of the outbox: events waiting to be published."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from jobq.core.model import JobEvent
from jobq.store.sqlite.db import SqliteDb, from_us, to_us
from jobq.store.sqlite.rows import event_from_row


class SqliteEventLog:
    def __init__(self, db: SqliteDb) -> None:
        self._db = db

    async def unpublished(self, limit: int) -> list[JobEvent]:
        async with self._db.read() as conn:
            cursor = await conn.execute(
                "SELECT * FROM job_events WHERE published_at IS NULL ORDER BY seq LIMIT ?",
                (limit,),
            )
            return [event_from_row(r) for r in await cursor.fetchall()]

    async def mark_published(self, event_ids: Sequence[str], at: dt.datetime) -> None:
        async with self._db.tx() as conn:
            await conn.executemany(
                "UPDATE job_events SET published_at = ? WHERE id = ?",
                [(to_us(at), event_id) for event_id in event_ids],
            )

    async def backlog(self) -> tuple[int, dt.datetime | None]:
        async with self._db.read() as conn:
            cursor = await conn.execute(
                "SELECT count(*), min(at) FROM job_events WHERE published_at IS NULL"
            )
            count, oldest = await cursor.fetchone()
        return count, None if oldest is None else from_us(oldest)

    async def prune(self, before: dt.datetime, limit: int, *, unpublished: bool) -> int:
        async with self._db.tx() as conn:
            cursor = await conn.execute(
                "DELETE FROM job_events WHERE seq IN ("
                " SELECT e.seq FROM job_events e WHERE e.at < ?"
                " AND (e.published_at IS NOT NULL OR ?)"
                " AND NOT EXISTS (SELECT 1 FROM jobs j"
                "  WHERE j.id = e.job_id AND j.finished_at IS NULL)"
                " ORDER BY e.at LIMIT ?)",
                (to_us(before), 1 if unpublished else 0, limit),
            )
            return int(cursor.rowcount)
