"""The PostgreSQL queue repository."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from jobq.core.errors import AlreadyExists, NotFound
from jobq.core.model import DEFAULT_TENANT, JobEvent, QueueConfig, QueueStats
from jobq.core.states import EventKind, JobState
from jobq.core.validation import validate_queue
from jobq.store.base import Tenant
from jobq.store.postgres.db import Conn, PgDb
from jobq.store.postgres.queries import WORK_CHANNEL
from jobq.store.postgres.rows import QUEUE_COLUMNS, queue_from_row, queue_params
from jobq.store.transitions import transition_event

_COLUMNS = ", ".join(QUEUE_COLUMNS)
_VALUES = ", ".join(f"%({c})s" for c in QUEUE_COLUMNS)
INSERT_QUEUE = (
    f"INSERT INTO queues ({_COLUMNS}, created_at, updated_at) VALUES ({_VALUES}, %(now)s, %(now)s)"
)
UPDATE_QUEUE = (
    "UPDATE queues SET "
    + ", ".join(f"{c} = %({c})s" for c in QUEUE_COLUMNS if c not in ("name", "tenant"))
    + ", updated_at = %(now)s WHERE tenant = %(tenant)s AND name = %(name)s"
)


INSERT_EVENT = """
INSERT INTO job_events (id, job_id, queue, tenant, kind, from_state, to_state, attempt, at,
                        details)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""

QueueKey = tuple[str, str]  # (tenant, name)


async def insert_events(conn: Conn, events: Iterable[JobEvent]) -> None:
    params = [
        (
            e.id,
            e.job_id,
            e.queue,
            e.tenant,
            e.kind.value,
            e.from_state.value if e.from_state else None,
            e.to_state.value if e.to_state else None,
            e.attempt,
            e.at,
            Jsonb(e.details),
        )
        for e in events
    ]
    if params:
        async with conn.cursor() as cur:
            await cur.executemany(INSERT_EVENT, params)


async def notify_work(conn: Conn, origin: str, queues: Iterable[str]) -> None:
    """Wake idle long-polls on every other replica once this transaction commits."""
    for queue in sorted(set(queues)):
        await conn.execute("SELECT pg_notify(%s, %s)", (WORK_CHANNEL, f"{origin} {queue}"))


async def load_queues(conn: Conn, keys: Iterable[QueueKey]) -> dict[QueueKey, QueueConfig]:
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    cur = await conn.execute(
        "SELECT q.* FROM queues q JOIN unnest(%s::text[], %s::text[]) AS k(tenant, name)"
        " ON q.tenant = k.tenant AND q.name = k.name",
        ([t for t, _ in wanted], [n for _, n in wanted]),
    )
    return {(row["tenant"], row["name"]): queue_from_row(row) for row in await cur.fetchall()}


class PgQueues:
    def __init__(self, db: PgDb) -> None:
        self._db = db

    async def create(self, queue: QueueConfig, now: dt.datetime) -> QueueConfig:
        try:
            async with self._db.tx() as conn:
                await conn.execute(INSERT_QUEUE, queue_params(queue) | {"now": now})
        except psycopg.errors.UniqueViolation:
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
                cur = await conn.execute("SELECT * FROM queues ORDER BY name, tenant")
            else:
                cur = await conn.execute(
                    "SELECT * FROM queues WHERE tenant = %s ORDER BY name", (tenant,)
                )
            return [queue_from_row(r) for r in await cur.fetchall()]

    async def update(
        self, name: str, changes: dict[str, Any], now: dt.datetime, *, tenant: str = DEFAULT_TENANT
    ) -> QueueConfig:
        async with self._db.tx() as conn:
            cur = await conn.execute(
                "SELECT * FROM queues WHERE tenant = %s AND name = %s FOR UPDATE", (tenant, name)
            )
            row = await cur.fetchone()
            if row is None:
                raise NotFound(f"queue {name!r} not found")
            # Name and tenant are the queue's key: a change never moves it.
            kept = {k: v for k, v in changes.items() if k not in ("name", "tenant")}
            updated = validate_queue(dataclasses.replace(queue_from_row(row), **kept))
            await conn.execute(UPDATE_QUEUE, queue_params(updated) | {"now": now})
            if not updated.paused:
                await notify_work(conn, self._db.origin, [name])
        return updated

    async def purge(self, name: str, now: dt.datetime, *, tenant: str = DEFAULT_TENANT) -> int:
        async with self._db.tx() as conn:
            if not await load_queues(conn, [(tenant, name)]):
                raise NotFound(f"queue {name!r} not found")
            cur = await conn.execute(
                "WITH pending AS (SELECT id, state FROM jobs WHERE tenant = %(t)s AND queue = %(q)s"
                " AND state IN ('scheduled', 'queued') FOR UPDATE) "
                "UPDATE jobs j SET state = 'cancelled', finished_at = %(now)s,"
                " updated_at = %(now)s FROM pending WHERE j.id = pending.id"
                " RETURNING j.id, j.attempt, j.correlation_id, pending.state AS was",
                {"q": name, "t": tenant, "now": now},
            )
            rows = await cur.fetchall()
            await insert_events(
                conn,
                (
                    transition_event(
                        job_id=str(r["id"]),
                        correlation_id=r["correlation_id"] or None,
                        queue=name,
                        tenant=tenant,
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

    async def stats(
        self, name: str | None, now: dt.datetime, *, tenant: Tenant = None
    ) -> list[QueueStats]:
        clauses, params = [], []
        if name:
            clauses.append("name = %s")
            params.append(name)
        if tenant is not None:
            clauses.append("tenant = %s")
            params.append(tenant)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        async with self._db.read() as conn:
            cur = await conn.execute(f"SELECT * FROM queues{where}", params)
            queues = {(r["tenant"], r["name"]): queue_from_row(r) for r in await cur.fetchall()}
            if name and not queues:
                raise NotFound(f"queue {name!r} not found")
            cur = await conn.execute(
                "SELECT j.tenant, j.queue, j.state, count(*) AS n, min(j.run_at) AS oldest"
                " FROM jobs j JOIN unnest(%s::text[], %s::text[]) AS k(tenant, name)"
                " ON j.tenant = k.tenant AND j.queue = k.name"
                " GROUP BY j.tenant, j.queue, j.state",
                ([t for t, _ in queues], [n for _, n in queues]),
            )
            rows = await cur.fetchall()
        counts: dict[tuple[str, str], dict[str, int]] = {q: {} for q in queues}
        oldest: dict[tuple[str, str], float] = {}
        for row in rows:
            key = (row["tenant"], row["queue"])
            counts[key][row["state"]] = row["n"]
            if row["state"] == JobState.QUEUED.value:
                oldest[key] = max(0.0, (now - row["oldest"]).total_seconds())
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
