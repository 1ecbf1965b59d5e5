-- Rate limits and concurrency caps at lease time (ADR 0017). A job may name a rate_key
-- (whose per-key rate it shares) and a concurrency_key (whose per-key cap it shares);
-- both are scoped to the job's (tenant, queue). A queue's limits: 0 means none.
-- depends: 0007_schedules

ALTER TABLE jobs ADD COLUMN rate_key text;
ALTER TABLE jobs ADD COLUMN concurrency_key text;

ALTER TABLE queues ADD COLUMN rate_limit double precision NOT NULL DEFAULT 0;
ALTER TABLE queues ADD COLUMN rate_burst integer NOT NULL DEFAULT 0;
ALTER TABLE queues ADD COLUMN key_rate_limit double precision NOT NULL DEFAULT 0;
ALTER TABLE queues ADD COLUMN key_rate_burst integer NOT NULL DEFAULT 0;
ALTER TABLE queues ADD COLUMN key_concurrency_limit integer NOT NULL DEFAULT 0;

-- The per-key cap counts a queue's running jobs by key inside the lease transaction.
CREATE INDEX jobs_running_key ON jobs (tenant, queue, concurrency_key)
    WHERE state = 'running' AND concurrency_key IS NOT NULL;
