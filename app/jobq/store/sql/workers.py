"""The worker repository, written once over the dialect port."""

from __future__ import annotations

import datetime as dt

from jobq.core.errors import AlreadyExists, NotFound
from jobq.core.model import WorkerInfo, WorkerState
from jobq.store.base import Tenant
from jobq.store.changes import with_liveness
from jobq.store.sql.port import Dialect


class SqlWorkers:
    def __init__(self, dialect: Dialect) -> None:
        self._d = dialect
        self._q = dialect.q

    async def register(self, worker: WorkerInfo) -> WorkerInfo:
        params = {
            "id": worker.id,
            "hostname": worker.hostname,
            "queues": list(worker.queues),
            "task_types": list(worker.task_types),
            "task_queues": dict(worker.task_queues),
            "capacity": worker.capacity,
            "state": worker.state.value,
            "started_at": worker.started_at,
            "last_heartbeat": worker.last_heartbeat,
            "tenant": worker.tenant,
            "subject": worker.subject,
        }
        async with self._d.tx() as conn:
            if not await self._d.fetch(conn, self._q.UPSERT_WORKER, params):
                raise AlreadyExists(f"worker id {worker.id} is registered by another principal")
        return worker

    async def get(
        self, worker_id: str, *, tenant: Tenant = None, count_jobs: bool = True
    ) -> WorkerInfo | None:
        query = self._q.WORKER_BY_ID if count_jobs else self._q.WORKER_ROW_BY_ID
        async with self._d.read() as conn:
            rows = await self._d.fetch(conn, query, {"id": worker_id, "tenant": tenant})
        return self._d.worker(rows[0]) if rows else None

    async def all(
        self, now: dt.datetime, lost_after: dt.timedelta, *, tenant: Tenant = None
    ) -> list[WorkerInfo]:
        async with self._d.read() as conn:
            rows = await self._d.fetch(conn, self._q.WORKERS, {"tenant": tenant})
        return [with_liveness(self._d.worker(r), now, lost_after) for r in rows]

    async def set_state(
        self, worker_id: str, state: WorkerState, *, tenant: Tenant = None
    ) -> WorkerInfo:
        async with self._d.tx() as conn:
            changed = await self._d.execute(
                conn,
                self._q.SET_WORKER_STATE,
                {"id": worker_id, "state": state.value, "tenant": tenant},
            )
            if changed == 0:
                raise NotFound(f"worker {worker_id} not found")
        worker = await self.get(worker_id)
        assert worker is not None
        return worker
