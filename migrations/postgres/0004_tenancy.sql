-- Tenants own their data: a queue is (tenant, name), so two tenants may each have "emails";
-- a job names its queue by (tenant, queue); workers and events carry the tenant too.
-- Rows from before tenancy belong to tenant 'default' (the column defaults).
-- depends: 0002_store_probe

ALTER TABLE jobs DROP CONSTRAINT jobs_queue_fkey;
ALTER TABLE queues DROP CONSTRAINT queues_pkey;
ALTER TABLE queues ADD CONSTRAINT queues_pkey PRIMARY KEY (tenant, name);

-- A job that named a queue of another tenant gets its own tenant's copy of that queue,
-- with the same settings, so that every job's (tenant, queue) is a queue.
INSERT INTO queues (name, tenant, paused, weight, max_attempts, backoff_base, backoff_max,
                    lease_timeout, default_ttl, concurrency_limit, retention, created_at,
                    updated_at)
SELECT DISTINCT ON (j.tenant, j.queue)
       q.name, j.tenant, q.paused, q.weight, q.max_attempts, q.backoff_base, q.backoff_max,
       q.lease_timeout, q.default_ttl, q.concurrency_limit, q.retention, q.created_at,
       q.updated_at
FROM jobs j JOIN queues q ON q.name = j.queue
WHERE NOT EXISTS (SELECT 1 FROM queues t WHERE t.tenant = j.tenant AND t.name = j.queue)
ORDER BY j.tenant, j.queue, q.tenant;

ALTER TABLE jobs ADD CONSTRAINT jobs_queue_fkey
    FOREIGN KEY (tenant, queue) REFERENCES queues (tenant, name);

-- Leasing, idempotency and listing now look a queue up within its tenant.
DROP INDEX jobs_leasable;
CREATE INDEX jobs_leasable ON jobs (tenant, queue, priority DESC, run_at, id)
    WHERE state = 'queued';
DROP INDEX jobs_idempotency;
CREATE UNIQUE INDEX jobs_idempotency ON jobs (tenant, queue, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- A tenant's ListJobs: newest first within the tenant.
CREATE INDEX jobs_tenant ON jobs (tenant, id);

-- The tenant a worker serves ('*': every tenant) and the principal that registered it:
-- only that principal may act as the worker.
ALTER TABLE workers ADD COLUMN tenant text NOT NULL DEFAULT 'default';
ALTER TABLE workers ADD COLUMN subject text NOT NULL DEFAULT '';

ALTER TABLE job_events ADD COLUMN tenant text NOT NULL DEFAULT 'default';
UPDATE job_events e SET tenant = j.tenant FROM jobs j WHERE j.id = e.job_id AND j.tenant <> e.tenant;
