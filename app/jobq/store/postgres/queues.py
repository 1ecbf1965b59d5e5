"""The PostgreSQL queue repository."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import psycopg

from jobq.core.errors import AlreadyExists, NotFound
from jobq.core.model import QueueConfig, QueueStats
from jobq.core.states import EventKind, JobState
from jobq.core.validation import validate_queue
from jobq.store.postgres.db import PgDb
from jobq.store.postgres.jobs import insert_events, load_queues, notify_work
from jobq.store.postgres.rows import QUEUE_COLUMNS, queue_from_row, queue_params
from jobq.store.transitions import transition_event

_COLUMNS = ", ".join(QUEUE_COLUMNS)
_VALUES = ", ".join(f"%({c})s" for c in QUEUE_COLUMNS)
INSERT_QUEUE = (
    f"INSERT INTO queues ({_COLUMNS}, created_at, updated_at) VALUES ({_VALUES}, %(now)s, %(now)s)"
)
UPDATE_QUEUE = (
    "UPDATE queues SET "
    + ", ".join(f"{c} = %({c})s" for c in QUEUE_COLUMNS if c != "name")
    + ", updated_at = %(now)s WHERE name = %(name)s"
)


class PgQueues:
    def __init__(self, db: PgDb) -> None:
        self._db = db

    async def create(self, queue: QueueConfig, now: dt.datetime) -> QueueConfig:
        try:
            async with self._db.tx() as conn:
                await conn.execute(INSERT_QUEUE, queue_params(queue) | {"now": now})
        except psycopg.errors.UniqueViolation:
            raise AlreadyExists(f"queue {queue.name!r} already exists") from None
        return queue

    async def get(self, name: str) -> QueueConfig | None:
        async with self._db.read() as conn:
            return (await load_queues(conn, [name])).get(name)

    async def all(self) -> list[QueueConfig]:
        async with self._db.read() as conn:
            cur = await conn.execute("SELECT * FROM queues ORDER BY name")
            return [queue_from_row(r) for r in await cur.fetchall()]

    async def update(self, name: str, changes: dict[str, Any], now: dt.datetime) -> QueueConfig:
        async with self._db.tx() as conn:
            cur = await conn.execute("SELECT * FROM queues WHERE name = %s FOR UPDATE", (name,))
            row = await cur.fetchone()
            if row is None:
                raise NotFound(f"queue {name!r} not found")
            updated = validate_queue(dataclasses.replace(queue_from_row(row), **changes))
            await conn.execute(UPDATE_QUEUE, queue_params(updated) | {"now": now})
            if not updated.paused:
                await notify_work(conn, [name])
        return updated

    async def purge(self, name: str, now: dt.datetime) -> int:
        async with self._db.tx() as conn:
            if not await load_queues(conn, [name]):
                raise NotFound(f"queue {name!r} not found")
            cur = await conn.execute(
                "WITH pending AS (SELECT id, state FROM jobs WHERE queue = %(q)s"
                " AND state IN ('scheduled', 'queued') FOR UPDATE) "
                "UPDATE jobs j SET state = 'cancelled', finished_at = %(now)s,"
                " updated_at = %(now)s FROM pending WHERE j.id = pending.id"
                " RETURNING j.id, j.attempt, j.correlation_id, pending.state AS was",
                {"q": name, "now": now},
            )
            rows = await cur.fetchall()
            await insert_events(
                conn,
                (
                    transition_event(
                        job_id=str(r["id"]),
                        correlation_id=r["correlation_id"] or None,
                        queue=name,
                        kind=EventKind.CANCELLED,
                        from_state=JobState(r["was"]),
                        to_state=JobState.CANCELLED,
                        attempt=r["attempt"],
                        at=now,
                        reason="queue purged",
                    )
                    for r in rows
                ),
            )
            return len(rows)

    async def stats(self, name: str | None, now: dt.datetime) -> list[QueueStats]:
        async with self._db.read() as conn:
            if name:
                queues = await load_queues(conn, [name])
                if name not in queues:
                    raise NotFound(f"queue {name!r} not found")
            else:
                cur = await conn.execute("SELECT * FROM queues")
                queues = {r["name"]: queue_from_row(r) for r in await cur.fetchall()}
            cur = await conn.execute(
                "SELECT queue, state, count(*) AS n, min(run_at) AS oldest FROM jobs "
                "WHERE queue = ANY(%s) GROUP BY queue, state",
                (list(queues),),
            )
            rows = await cur.fetchall()
        counts: dict[str, dict[str, int]] = {q: {} for q in queues}
        oldest: dict[str, float] = {}
        for row in rows:
            counts[row["queue"]][row["state"]] = row["n"]
            if row["state"] == JobState.QUEUED.value:
                oldest[row["queue"]] = max(0.0, (now - row["oldest"]).total_seconds())
        return [
            QueueStats(
                queue=q.name,
                paused=q.paused,
                by_state={s.value: counts[q.name].get(s.value, 0) for s in JobState},
                oldest_queued_age_seconds=oldest.get(q.name, 0.0),
            )
            for q in sorted(queues.values(), key=lambda q: q.name)
        ]
