"""The SQLite API key repository."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3

from jobq.auth.keys import ApiKey
from jobq.auth.principal import Role
from jobq.core.errors import AlreadyExists, NotFound
from jobq.store.sqlite.db import SqliteDb, from_us, opt_from_us, opt_to_us, to_us

INSERT_KEY = """
INSERT INTO api_keys (id, secret_sha256, tenant, roles, queues, description, created_at,
                      expires_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO NOTHING
"""

# COALESCE: a second revoke keeps the first time.
REVOKE_KEY = "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?"


def _key(row: sqlite3.Row) -> ApiKey:
    return ApiKey(
        id=row["id"],
        secret_sha256=row["secret_sha256"],
        tenant=row["tenant"],
        roles=frozenset(Role(r) for r in json.loads(row["roles"])),
        queues=None if row["queues"] is None else frozenset(json.loads(row["queues"])),
        description=row["description"],
        created_at=from_us(row["created_at"]),
        expires_at=opt_from_us(row["expires_at"]),
        revoked_at=opt_from_us(row["revoked_at"]),
    )


class SqliteApiKeys:
    def __init__(self, db: SqliteDb) -> None:
        self._db = db

    async def create(self, key: ApiKey) -> ApiKey:
        assert key.created_at is not None
        async with self._db.tx() as conn:
            cursor = await conn.execute(
                INSERT_KEY,
                (
                    key.id,
                    key.secret_sha256,
                    key.tenant,
                    json.dumps(sorted(r.value for r in key.roles)),
                    None if key.queues is None else json.dumps(sorted(key.queues)),
                    key.description,
                    to_us(key.created_at),
                    opt_to_us(key.expires_at),
                ),
            )
            if cursor.rowcount == 0:
                raise AlreadyExists(f"API key {key.id} exists")
        return key

    async def get(self, key_id: str) -> ApiKey | None:
        async with self._db.read() as conn:
            cursor = await conn.execute("SELECT * FROM api_keys WHERE id = ?", (key_id,))
            row = await cursor.fetchone()
        return None if row is None else _key(row)

    async def all(self, tenant: str | None = None) -> list[ApiKey]:
        """Every key, or one tenant's, oldest first."""
        async with self._db.read() as conn:
            if tenant is None:
                cursor = await conn.execute("SELECT * FROM api_keys ORDER BY created_at, id")
            else:
                cursor = await conn.execute(
                    "SELECT * FROM api_keys WHERE tenant = ? ORDER BY created_at, id", (tenant,)
                )
            return [_key(r) for r in await cursor.fetchall()]

    async def revoke(self, key_id: str, now: dt.datetime) -> ApiKey:
        async with self._db.tx() as conn:
            cursor = await conn.execute(REVOKE_KEY, (to_us(now), key_id))
            if cursor.rowcount == 0:
                raise NotFound(f"API key {key_id} not found")
            cursor = await conn.execute("SELECT * FROM api_keys WHERE id = ?", (key_id,))
            row = await cursor.fetchone()
        assert row is not None
        return _key(row)
