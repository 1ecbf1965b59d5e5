"""The PostgreSQL side of the outbox: events waiting to be published."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from jobq.core.model import JobEvent
from jobq.store.postgres.db import PgDb
from jobq.store.postgres.rows import event_from_row


class PgEventLog:
    def __init__(self, db: PgDb) -> None:
        self._db = db

    async def unpublished(self, limit: int) -> list[JobEvent]:
        async with self._db.read() as conn:
            cur = await conn.execute(
                "SELECT * FROM job_events WHERE published_at IS NULL ORDER BY seq LIMIT %s",
                (limit,),
            )
            return [event_from_row(r) for r in await cur.fetchall()]

    async def mark_published(self, event_ids: Sequence[str], at: dt.datetime) -> None:
        async with self._db.tx() as conn:
            await conn.execute(
                "UPDATE job_events SET published_at = %s WHERE id = ANY(%s::uuid[])",
                (at, list(event_ids)),
            )

    async def backlog(self) -> tuple[int, dt.datetime | None]:
        async with self._db.read() as conn:
            cur = await conn.execute(
                "SELECT count(*) AS n, min(at) AS oldest FROM job_events WHERE published_at IS NULL"
            )
            row = await cur.fetchone()
        assert row is not None
        return row["n"], row["oldest"]

    async def prune(self, before: dt.datetime, limit: int, *, unpublished: bool) -> int:
        async with self._db.tx() as conn:
            cur = await conn.execute(
                "DELETE FROM job_events WHERE seq IN ("
                " SELECT e.seq FROM job_events e WHERE e.at < %(before)s"
                " AND (e.published_at IS NOT NULL OR %(unpublished)s)"
                " AND NOT EXISTS (SELECT 1 FROM jobs j"
                "  WHERE j.id = e.job_id AND j.finished_at IS NULL)"
                " ORDER BY e.at LIMIT %(limit)s FOR UPDATE OF e SKIP LOCKED)",
                {"before": before, "unpublished": unpublished, "limit": limit},
            )
            return cur.rowcount
