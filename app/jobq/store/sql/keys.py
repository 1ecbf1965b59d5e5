"""The API key repository, written once over the dialect port."""

from __future__ import annotations

import datetime as dt

from jobq.auth.keys import ApiKey
from jobq.core.errors import AlreadyExists, NotFound
from jobq.store.sql.port import Dialect


class SqlApiKeys:
    def __init__(self, dialect: Dialect) -> None:
        self._d = dialect
        self._q = dialect.q

    async def create(self, key: ApiKey) -> ApiKey:
        assert key.created_at is not None
        params = {
            "id": key.id,
            "secret_sha256": key.secret_sha256,
            "tenant": key.tenant,
            "roles": sorted(r.value for r in key.roles),
            "queues": None if key.queues is None else sorted(key.queues),
            "description": key.description,
            "created_at": key.created_at,
            "expires_at": key.expires_at,
        }
        async with self._d.tx() as conn:
            if await self._d.execute(conn, self._q.INSERT_KEY, params) == 0:
                raise AlreadyExists(f"API key {key.id} exists")
        return key

    async def get(self, key_id: str) -> ApiKey | None:
        async with self._d.read() as conn:
            rows = await self._d.fetch(conn, self._q.KEY_BY_ID, {"id": key_id})
        return self._d.api_key(rows[0]) if rows else None

    async def all(self, tenant: str | None = None) -> list[ApiKey]:
        """Every key, or one tenant's, oldest first."""
        async with self._d.read() as conn:
            rows = await self._d.fetch(conn, self._q.KEYS, {"tenant": tenant})
            return [self._d.api_key(r) for r in rows]

    async def revoke(self, key_id: str, now: dt.datetime) -> ApiKey:
        async with self._d.tx() as conn:
            rows = await self._d.fetch(conn, self._q.REVOKE_KEY, {"now": now, "id": key_id})
        if not rows:
            raise NotFound(f"API key {key_id} not found")
        return self._d.api_key(rows[0])
