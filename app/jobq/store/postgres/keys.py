"""The PostgreSQL API key repository."""

from __future__ import annotations

import datetime as dt
from typing import Any

from jobq.auth.keys import ApiKey
from jobq.auth.principal import Role
from jobq.core.errors import AlreadyExists, NotFound
from jobq.store.postgres.db import PgDb

INSERT_KEY = """
INSERT INTO api_keys (id, secret_sha256, tenant, roles, queues, description, created_at,
                      expires_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (id) DO NOTHING
"""

# COALESCE: a second revoke keeps the first time.
REVOKE_KEY = """
UPDATE api_keys SET revoked_at = COALESCE(revoked_at, %s) WHERE id = %s RETURNING *
"""


def _key(row: dict[str, Any]) -> ApiKey:
    return ApiKey(
        id=row["id"],
        secret_sha256=row["secret_sha256"],
        tenant=row["tenant"],
        roles=frozenset(Role(r) for r in row["roles"]),
        queues=None if row["queues"] is None else frozenset(row["queues"]),
        description=row["description"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
    )


class PgApiKeys:
    def __init__(self, db: PgDb) -> None:
        self._db = db

    async def create(self, key: ApiKey) -> ApiKey:
        async with self._db.tx() as conn:
            cur = await conn.execute(
                INSERT_KEY,
                (
                    key.id,
                    key.secret_sha256,
                    key.tenant,
                    sorted(r.value for r in key.roles),
                    None if key.queues is None else sorted(key.queues),
                    key.description,
                    key.created_at,
                    key.expires_at,
                ),
            )
            if cur.rowcount == 0:
                raise AlreadyExists(f"API key {key.id} exists")
        return key

    async def get(self, key_id: str) -> ApiKey | None:
        async with self._db.read() as conn:
            cur = await conn.execute("SELECT * FROM api_keys WHERE id = %s", (key_id,))
            row = await cur.fetchone()
        return None if row is None else _key(row)

    async def all(self, tenant: str | None = None) -> list[ApiKey]:
        """Every key, or one tenant's, oldest first."""
        async with self._db.read() as conn:
            if tenant is None:
                cur = await conn.execute("SELECT * FROM api_keys ORDER BY created_at, id")
            else:
                cur = await conn.execute(
                    "SELECT * FROM api_keys WHERE tenant = %s ORDER BY created_at, id", (tenant,)
                )
            return [_key(r) for r in await cur.fetchall()]

    async def revoke(self, key_id: str, now: dt.datetime) -> ApiKey:
        async with self._db.tx() as conn:
            cur = await conn.execute(REVOKE_KEY, (now, key_id))
            row = await cur.fetchone()
        if row is None:
            raise NotFound(f"API key {key_id} not found")
        return _key(row)
