"""The SQLite queue repository."""

from __future__ import annotations

import dataclasses
import datetime as dt
import sqlite3
from typing import Any

from jobq.core.errors import AlreadyExists, NotFound
from jobq.core.model import QueueConfig, QueueStats
from jobq.core.states import EventKind, JobState
from jobq.core.validation import validate_queue
from jobq.store.sqlite.db import SqliteDb, from_us, to_us
from jobq.store.sqlite.jobs import insert_events, load_queues
from jobq.store.sqlite.rows import queue_from_row, queue_params
from jobq.store.transitions import transition_event

INSERT_QUEUE = """
INSERT INTO queues (name, tenant, paused, weight, max_attempts, backoff_base_us, backoff_max_us,
                    lease_timeout_us, default_ttl_us, concurrency_limit, retention_us,
                    created_at, updated_at)
VALUES (:name, :tenant, :paused, :weight, :max_attempts, :backoff_base_us, :backoff_max_us,
        :lease_timeout_us, :default_ttl_us, :concurrency_limit, :retention_us, :now, :now)
"""

UPDATE_QUEUE = """
UPDATE queues SET tenant = :tenant, paused = :paused, weight = :weight,
    max_attempts = :max_attempts, backoff_base_us = :backoff_base_us,
    backoff_max_us = :backoff_max_us, lease_timeout_us = :lease_timeout_us,
    default_ttl_us = :default_ttl_us, concurrency_limit = :concurrency_limit,
    retention_us = :retention_us, updated_at = :now
WHERE name = :name
"""


class SqliteQueues:
    def __init__(self, db: SqliteDb) -> None:
        self._db = db

    async def create(self, queue: QueueConfig, now: dt.datetime) -> QueueConfig:
        async with self._db.tx() as conn:
            try:
                await conn.execute(INSERT_QUEUE, queue_params(queue) | {"now": to_us(now)})
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"queue {queue.name!r} already exists") from None
        return queue

    async def get(self, name: str) -> QueueConfig | None:
        async with self._db.read() as conn:
            return (await load_queues(conn, [name])).get(name)

    async def all(self) -> list[QueueConfig]:
        async with self._db.read() as conn:
            cursor = await conn.execute("SELECT * FROM queues ORDER BY name")
            return [queue_from_row(r) for r in await cursor.fetchall()]

    async def update(self, name: str, changes: dict[str, Any], now: dt.datetime) -> QueueConfig:
        async with self._db.tx() as conn:
            current = (await load_queues(conn, [name])).get(name)
            if current is None:
                raise NotFound(f"queue {name!r} not found")
            updated = validate_queue(dataclasses.replace(current, **changes))
            await conn.execute(UPDATE_QUEUE, queue_params(updated) | {"now": to_us(now)})
        return updated

    async def purge(self, name: str, now: dt.datetime) -> int:
        now_us = to_us(now)
        async with self._db.tx() as conn:
            if not await load_queues(conn, [name]):
                raise NotFound(f"queue {name!r} not found")
            cursor = await conn.execute(
                "SELECT id, state, attempt, correlation_id FROM jobs WHERE queue = ? "
                "AND state IN ('scheduled', 'queued')",
                (name,),
            )
            rows = await cursor.fetchall()
            await conn.executemany(
                "UPDATE jobs SET state = 'cancelled', finished_at = ?, updated_at = ? WHERE id = ?",
                [(now_us, now_us, r["id"]) for r in rows],
            )
            await insert_events(
                conn,
                (
                    transition_event(
                        job_id=r["id"],
                        correlation_id=r["correlation_id"] or None,
                        queue=name,
                        kind=EventKind.CANCELLED,
                        from_state=JobState(r["state"]),
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
            queues = (
                await load_queues(conn, [name])
                if name
                else {
                    q.name: q
                    for q in [
                        queue_from_row(r)
                        for r in await (await conn.execute("SELECT * FROM queues")).fetchall()
                    ]
                }
            )
            if name and name not in queues:
                raise NotFound(f"queue {name!r} not found")
            counts: dict[str, dict[str, int]] = {q: {} for q in queues}
            oldest: dict[str, float] = {}
            cursor = await conn.execute(
                "SELECT queue, state, count(*) AS n, min(run_at) AS oldest FROM jobs "
                + ("WHERE queue = ? " if name else "")
                + "GROUP BY queue, state",
                (name,) if name else (),
            )
            for row in await cursor.fetchall():
                if row["queue"] not in counts:
                    continue
                counts[row["queue"]][row["state"]] = row["n"]
                if row["state"] == JobState.QUEUED.value:
                    age = (now - from_us(row["oldest"])).total_seconds()
                    oldest[row["queue"]] = max(0.0, age)
        return [
            QueueStats(
                queue=q.name,
                paused=q.paused,
                by_state={s.value: counts[q.name].get(s.value, 0) for s in JobState},
                oldest_queued_age_seconds=oldest.get(q.name, 0.0),
            )
            for q in sorted(queues.values(), key=lambda q: q.name)
        ]
