"""The PostgreSQL worker repository."""

from __future__ import annotations

import datetime as dt

from jobq.core.errors import AlreadyExists, NotFound
from jobq.core.model import WorkerInfo, WorkerState
from jobq.store.base import Tenant
from jobq.store.changes import with_liveness
from jobq.store.postgres.db import PgDb
from jobq.store.postgres.rows import worker_from_row

UPSERT_WORKER = """
INSERT INTO workers (id, hostname, queues, task_types, capacity, state, started_at,
                     last_heartbeat, tenant, subject)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
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


class PgWorkers:
    def __init__(self, db: PgDb) -> None:
        self._db = db

    async def register(self, worker: WorkerInfo) -> WorkerInfo:
        async with self._db.tx() as conn:
            cur = await conn.execute(
                UPSERT_WORKER,
                (
                    worker.id,
                    worker.hostname,
                    list(worker.queues),
                    list(worker.task_types),
                    worker.capacity,
                    worker.state.value,
                    worker.started_at,
                    worker.last_heartbeat,
                    worker.tenant,
                    worker.subject,
                ),
            )
            if await cur.fetchone() is None:
                raise AlreadyExists(f"worker id {worker.id} is registered by another principal")
        return worker

    async def get(self, worker_id: str, *, tenant: Tenant = None) -> WorkerInfo | None:
        sql, params = SELECT_WORKERS + " WHERE w.id = %s", [worker_id]
        if tenant is not None:
            sql += " AND w.tenant = %s"
            params.append(tenant)
        async with self._db.read() as conn:
            cur = await conn.execute(sql, params)
            row = await cur.fetchone()
        return None if row is None else worker_from_row(row)

    async def all(
        self, now: dt.datetime, lost_after: dt.timedelta, *, tenant: Tenant = None
    ) -> list[WorkerInfo]:
        where, params = ("", []) if tenant is None else (" WHERE w.tenant = %s", [tenant])
        async with self._db.read() as conn:
            cur = await conn.execute(SELECT_WORKERS + where + " ORDER BY w.started_at", params)
            workers = [worker_from_row(r) for r in await cur.fetchall()]
        return [with_liveness(w, now, lost_after) for w in workers]

    async def set_state(
        self, worker_id: str, state: WorkerState, *, tenant: Tenant = None
    ) -> WorkerInfo:
        sql, params = "UPDATE workers SET state = %s WHERE id = %s", [state.value, worker_id]
        if tenant is not None:
            sql += " AND tenant = %s"
            params.append(tenant)
        async with self._db.tx() as conn:
            cur = await conn.execute(sql, params)
            if cur.rowcount == 0:
                raise NotFound(f"worker {worker_id} not found")
        worker = await self.get(worker_id)
        assert worker is not None
        return worker
