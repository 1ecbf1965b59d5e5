-- API keys: the id and a SHA-256 of the 32-byte random secret, never the secret itself.
-- Every authenticated call looks its key up by the primary key, so a revocation holds on the
-- next call (ADR 0008). Times are microseconds since the epoch; lists are JSON arrays.
-- depends: 0002_store_probe

CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    secret_sha256 TEXT NOT NULL,
    tenant        TEXT NOT NULL,
    roles         TEXT NOT NULL,
    queues        TEXT,
    description   TEXT NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    revoked_at    INTEGER
);
CREATE INDEX api_keys_tenant ON api_keys (tenant, created_at);
