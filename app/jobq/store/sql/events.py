"""The outbox side of job_events, written once over the dialect port."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from jobq.core.model import JobEvent
from jobq.store.sql.port import Dialect


class SqlEventLog:
    def __init__(self, dialect: Dialect) -> None:
        self._d = dialect
        self._q = dialect.q

    async def unpublished(self, limit: int) -> list[JobEvent]:
        async with self._d.read() as conn:
            rows = await self._d.fetch(conn, self._q.UNPUBLISHED, {"limit": limit})
            return [self._d.event(r) for r in rows]

    async def mark_published(self, event_ids: Sequence[str], at: dt.datetime) -> None:
        ids = [i for i in event_ids if self._d.valid_id(i)]
        if not ids:
            return
        async with self._d.tx() as conn:
            await self._d.execute(conn, self._q.MARK_PUBLISHED, {"ids": ids, "at": at})

    async def backlog(self) -> tuple[int, dt.datetime | None]:
        async with self._d.read() as conn:
            (row,) = await self._d.fetch(conn, self._q.BACKLOG, {})
        count: int = row["n"]
        oldest: dt.datetime | None = self._d.decode_time(row["oldest"])
        return count, oldest

    async def prune(self, before: dt.datetime, limit: int, *, unpublished: bool) -> int:
        async with self._d.tx() as conn:
            return await self._d.execute(
                conn,
                self._q.PRUNE_EVENTS,
                {"before": before, "unpublished": unpublished, "limit": limit},
            )
