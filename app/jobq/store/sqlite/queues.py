"""The SQLite queue repository."""

from __future__ import annotations

import dataclasses
import datetime as dt
import sqlite3
from collections.abc import Iterable
from typing import Any

import aiosqlite

from jobq.core.errors import AlreadyExists, NotFound
from jobq.core.model import DEFAULT_TENANT, JobEvent, QueueConfig, QueueStats
from jobq.core.states import EventKind, JobState
from jobq.core.validation import validate_queue
from jobq.store.base import Tenant
from jobq.store.sqlite.db import SqliteDb, from_us, to_us
from jobq.store.sqlite.rows import event_params, queue_from_row, queue_params
from jobq.store.transitions import transition_event

INSERT_QUEUE = """
INSERT INTO queues (name, tenant, paused, weight, max_attempts, backoff_base_us, backoff_max_us,
                    lease_timeout_us, default_ttl_us, concurrency_limit, retention_us,
                    created_at, updated_at)
VALUES (:name, :tenant, :paused, :weight, :max_attempts, :backoff_base_us, :backoff_max_us,
        :lease_timeout_us, :default_ttl_us, :concurrency_limit, :retention_us, :now, :now)
"""

UPDATE_QUEUE = """
UPDATE queues SET paused = :paused, weight = :weight,
    max_attempts = :max_attempts, backoff_base_us = :backoff_base_us,
    backoff_max_us = :backoff_max_us, lease_timeout_us = :lease_timeout_us,
    default_ttl_us = :default_ttl_us, concurrency_limit = :concurrency_limit,
    retention_us = :retention_us, updated_at = :now
WHERE tenant = :tenant AND name = :name
"""


INSERT_EVENT = """
INSERT INTO job_events (id, job_id, queue, tenant, kind, from_state, to_state, attempt, at,
                        details)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""

QueueKey = tuple[str, str]  # (tenant, name)


async def insert_events(conn: aiosqlite.Connection, events: Iterable[JobEvent]) -> None:
    await conn.executemany(INSERT_EVENT, [event_params(e) for e in events])


async def load_queues(
    conn: aiosqlite.Connection, keys: Iterable[QueueKey]
) -> dict[QueueKey, QueueConfig]:
    found: dict[QueueKey, QueueConfig] = {}
    for tenant, name in sorted(set(keys)):
        cursor = await conn.execute(
            "SELECT * FROM queues WHERE tenant = ? AND name = ?", (tenant, name)
        )
        row = await cursor.fetchone()
        if row is not None:
            found[(tenant, name)] = queue_from_row(row)
    return found


class SqliteQueues:
    def __init__(self, db: SqliteDb) -> None:
        self._db = db

    async def create(self, queue: QueueConfig, now: dt.datetime) -> QueueConfig:
        async with self._db.tx() as conn:
            try:
                await conn.execute(INSERT_QUEUE, queue_params(queue) | {"now": to_us(now)})
            except sqlite3.IntegrityError:
                raise AlreadyExists(
                    f"queue {queue.name!r} already exists in tenant {queue.tenant!r}"
                ) from None
        return queue

    async def get(self, name: str, *, tenant: str = DEFAULT_TENANT) -> QueueConfig | None:
        async with self._db.read() as conn:
            return (await load_queues(conn, [(tenant, name)])).get((tenant, name))

    async def all(self, *, tenant: Tenant = None) -> list[QueueConfig]:
        async with self._db.read() as conn:
            if tenant is None:
                cursor = await conn.execute("SELECT * FROM queues ORDER BY name, tenant")
            else:
                cursor = await conn.execute(
                    "SELECT * FROM queues WHERE tenant = ? ORDER BY name", (tenant,)
                )
            return [queue_from_row(r) for r in await cursor.fetchall()]

    async def update(
        self, name: str, changes: dict[str, Any], now: dt.datetime, *, tenant: str = DEFAULT_TENANT
    ) -> QueueConfig:
        async with self._db.tx() as conn:
            current = (await load_queues(conn, [(tenant, name)])).get((tenant, name))
            if current is None:
                raise NotFound(f"queue {name!r} not found")
            # Name and tenant are the queue's key: a change never moves it.
            kept = {k: v for k, v in changes.items() if k not in ("name", "tenant")}
            updated = validate_queue(dataclasses.replace(current, **kept))
            await conn.execute(UPDATE_QUEUE, queue_params(updated) | {"now": to_us(now)})
        return updated

    async def purge(self, name: str, now: dt.datetime, *, tenant: str = DEFAULT_TENANT) -> int:
        now_us = to_us(now)
        async with self._db.tx() as conn:
            if not await load_queues(conn, [(tenant, name)]):
                raise NotFound(f"queue {name!r} not found")
            cursor = await conn.execute(
                "SELECT id, state, attempt, correlation_id FROM jobs WHERE tenant = ? AND queue = ?"
                " AND state IN ('scheduled', 'queued')",
                (tenant, name),
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
                        tenant=tenant,
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

    async def stats(
        self, name: str | None, now: dt.datetime, *, tenant: Tenant = None
    ) -> list[QueueStats]:
        clauses: list[str] = []
        params: list[str] = []
        if name:
            clauses.append("name = ?")
            params.append(name)
        if tenant is not None:
            clauses.append("tenant = ?")
            params.append(tenant)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        async with self._db.read() as conn:
            cursor = await conn.execute(f"SELECT * FROM queues{where}", params)
            queues = {(r["tenant"], r["name"]): queue_from_row(r) for r in await cursor.fetchall()}
            if name and not queues:
                raise NotFound(f"queue {name!r} not found")
            counts: dict[tuple[str, str], dict[str, int]] = {q: {} for q in queues}
            oldest: dict[tuple[str, str], float] = {}
            job_where = where.replace("name = ?", "queue = ?")
            cursor = await conn.execute(
                "SELECT tenant, queue, state, count(*) AS n, min(run_at) AS oldest FROM jobs"
                + job_where
                + " GROUP BY tenant, queue, state",
                params,
            )
            for row in await cursor.fetchall():
                key = (row["tenant"], row["queue"])
                if key not in counts:
                    continue
                counts[key][row["state"]] = row["n"]
                if row["state"] == JobState.QUEUED.value:
                    age = (now - from_us(row["oldest"])).total_seconds()
                    oldest[key] = max(0.0, age)
        return [
            QueueStats(
                queue=q.name,
                tenant=q.tenant,
                paused=q.paused,
                by_state={s.value: counts[key].get(s.value, 0) for s in JobState},
                oldest_queued_age_seconds=oldest.get(key, 0.0),
            )
            for key, q in sorted(queues.items(), key=lambda kq: (kq[0][1], kq[0][0]))
        ]
