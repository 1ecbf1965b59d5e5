"""The SQLite worker repository."""

from __future__ import annotations

import datetime as dt
import json

from jobq.core.errors import AlreadyExists, NotFound
from jobq.core.model import WorkerInfo, WorkerState
from jobq.store.base import Tenant
from jobq.store.changes import with_liveness
from jobq.store.sqlite.db import SqliteDb, to_us
from jobq.store.sqlite.rows import worker_from_row

UPSERT_WORKER = """
INSERT INTO workers (id, hostname, queues, task_types, capacity, state, started_at, last_heartbeat,
                     tenant, subject)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET hostname = excluded.hostname, queues = excluded.queues,
    task_types = excluded.task_types, capacity = excluded.capacity, state = excluded.state,
    last_heartbeat = excluded.last_heartbeat, tenant = excluded.tenant,
    subject = excluded.subject
WHERE workers.subject = excluded.subject
   OR ((workers.subject = '' OR workers.state = 'stopped')
       AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.worker_id = workers.id
                       AND j.state = 'running'))
RETURNING id
"""

SELECT_WORKERS = """
SELECT w.*, (SELECT count(*) FROM jobs j WHERE j.worker_id = w.id AND j.state = 'running')
       AS in_flight
FROM workers w
"""


class SqliteWorkers:
    def __init__(self, db: SqliteDb) -> None:
        self._db = db

    async def register(self, worker: WorkerInfo) -> WorkerInfo:
        async with self._db.tx() as conn:
            cursor = await conn.execute(
                UPSERT_WORKER,
                (
                    worker.id,
                    worker.hostname,
                    json.dumps(list(worker.queues)),
                    json.dumps(list(worker.task_types)),
                    worker.capacity,
                    worker.state.value,
                    to_us(worker.started_at),
                    to_us(worker.last_heartbeat),
                    worker.tenant,
                    worker.subject,
                ),
            )
            if await cursor.fetchone() is None:
                raise AlreadyExists(f"worker id {worker.id} is registered by another principal")
        return worker

    async def get(self, worker_id: str, *, tenant: Tenant = None) -> WorkerInfo | None:
        sql, params = SELECT_WORKERS + " WHERE w.id = ?", [worker_id]
        if tenant is not None:
            sql += " AND w.tenant = ?"
            params.append(tenant)
        async with self._db.read() as conn:
            cursor = await conn.execute(sql, params)
            row = await cursor.fetchone()
        return None if row is None else worker_from_row(row)

    async def all(
        self, now: dt.datetime, lost_after: dt.timedelta, *, tenant: Tenant = None
    ) -> list[WorkerInfo]:
        where, params = ("", []) if tenant is None else (" WHERE w.tenant = ?", [tenant])
        async with self._db.read() as conn:
            cursor = await conn.execute(SELECT_WORKERS + where + " ORDER BY w.started_at", params)
            workers = [worker_from_row(r) for r in await cursor.fetchall()]
        return [with_liveness(w, now, lost_after) for w in workers]

    async def set_state(
        self, worker_id: str, state: WorkerState, *, tenant: Tenant = None
    ) -> WorkerInfo:
        sql, params = "UPDATE workers SET state = ? WHERE id = ?", [state.value, worker_id]
        if tenant is not None:
            sql += " AND tenant = ?"
            params.append(tenant)
        async with self._db.tx() as conn:
            cursor = await conn.execute(sql, params)
            if cursor.rowcount == 0:
                raise NotFound(f"worker {worker_id} not found")
        worker = await self.get(worker_id)
        assert worker is not None
        return worker
