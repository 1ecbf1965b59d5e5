-- Rate limits and concurrency caps at lease time (ADR 0017). A job may name a rate_key
-- (whose per-key rate it shares) and a concurrency_key (whose per-key cap it shares);
-- both are scoped to the job's (tenant, queue). A queue's limits: 0 means none.
-- depends: 0007_schedules

ALTER TABLE jobs ADD COLUMN rate_key TEXT;
ALTER TABLE jobs ADD COLUMN concurrency_key TEXT;

ALTER TABLE queues ADD COLUMN rate_limit REAL NOT NULL DEFAULT 0;
ALTER TABLE queues ADD COLUMN rate_burst INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queues ADD COLUMN key_rate_limit REAL NOT NULL DEFAULT 0;
ALTER TABLE queues ADD COLUMN key_rate_burst INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queues ADD COLUMN key_concurrency_limit INTEGER NOT NULL DEFAULT 0;

CREATE INDEX jobs_running_key ON jobs (tenant, queue, concurrency_key)
    WHERE state = 'running' AND concurrency_key IS NOT NULL;
