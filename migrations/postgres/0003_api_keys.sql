-- API keys: the id and a SHA-256 of the 32-byte random secret, never the secret itself.
-- Every authenticated call looks its key up by the primary key, so a revocation holds on the
-- next call on every replica (ADR 0008).
-- depends: 0002_store_probe

CREATE TABLE api_keys (
    id            text PRIMARY KEY,
    secret_sha256 text NOT NULL,
    tenant        text NOT NULL,
    roles         text[] NOT NULL,
    queues        text[],
    description   text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX api_keys_tenant ON api_keys (tenant, created_at);
