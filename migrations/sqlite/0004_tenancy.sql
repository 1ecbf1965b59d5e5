-- Tenants own their data: a queue is (tenant, name), so two tenants may each have "emails";
-- a job names its queue by (tenant, queue); workers and events carry the tenant too.
-- Rows from before tenancy belong to tenant 'default' (the column defaults).
-- SQLite cannot change a primary key in place: queues and jobs are rebuilt.
-- depends: 0002_store_probe

CREATE TABLE queues_new (
    name              TEXT    NOT NULL,
    tenant            TEXT    NOT NULL DEFAULT 'default',
    paused            INTEGER NOT NULL DEFAULT 0,
    weight            INTEGER NOT NULL DEFAULT 1,
    max_attempts      INTEGER NOT NULL,
    backoff_base_us   INTEGER NOT NULL,
    backoff_max_us    INTEGER NOT NULL,
    lease_timeout_us  INTEGER NOT NULL,
    default_ttl_us    INTEGER,
    concurrency_limit INTEGER NOT NULL DEFAULT 0,
    retention_us      INTEGER NOT NULL,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    PRIMARY KEY (tenant, name)
);

INSERT INTO queues_new SELECT name, tenant, paused, weight, max_attempts, backoff_base_us,
    backoff_max_us, lease_timeout_us, default_ttl_us, concurrency_limit, retention_us,
    created_at, updated_at FROM queues;

-- A job that named a queue of another tenant gets its own tenant's copy of that queue,
-- with the same settings, so that every job's (tenant, queue) is a queue.
INSERT INTO queues_new SELECT q.name, j.tenant, q.paused, q.weight, q.max_attempts,
    q.backoff_base_us, q.backoff_max_us, q.lease_timeout_us, q.default_ttl_us,
    q.concurrency_limit, q.retention_us, q.created_at, q.updated_at
FROM (SELECT DISTINCT tenant, queue FROM jobs) j JOIN queues q ON q.name = j.queue
WHERE NOT EXISTS (SELECT 1 FROM queues_new t WHERE t.tenant = j.tenant AND t.name = j.queue);

CREATE TABLE jobs_new (
    id               TEXT PRIMARY KEY,  -- UUIDv7: sorts by submission time
    queue            TEXT    NOT NULL,
    tenant           TEXT    NOT NULL DEFAULT 'default',
    type             TEXT    NOT NULL,
    payload          TEXT    NOT NULL,
    state            TEXT    NOT NULL,
    priority         INTEGER NOT NULL DEFAULT 0,
    attempt          INTEGER NOT NULL DEFAULT 0,
    attempt_base     INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    run_at           INTEGER NOT NULL,
    timeout_us       INTEGER,
    expires_at       INTEGER,
    lease_expires_at INTEGER,
    worker_id        TEXT,
    idempotency_key  TEXT,
    result           TEXT,
    last_error       TEXT,
    progress         REAL    NOT NULL DEFAULT 0,
    progress_message TEXT    NOT NULL DEFAULT '',
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    correlation_id   TEXT    NOT NULL DEFAULT '',
    trace_context    TEXT    NOT NULL DEFAULT '{}',
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER,
    FOREIGN KEY (tenant, queue) REFERENCES queues_new (tenant, name)
);

INSERT INTO jobs_new SELECT id, queue, tenant, type, payload, state, priority, attempt,
    attempt_base, max_attempts, run_at, timeout_us, expires_at, lease_expires_at, worker_id,
    idempotency_key, result, last_error, progress, progress_message, cancel_requested,
    correlation_id, trace_context, created_at, updated_at, started_at, finished_at FROM jobs;

-- The child first, so that no row references the old queues table when it goes.
DROP TABLE jobs;
DROP TABLE queues;
-- Renaming rewrites jobs_new's foreign key to name `queues`.
ALTER TABLE queues_new RENAME TO queues;
ALTER TABLE jobs_new RENAME TO jobs;

-- Leasing: the next queued job of a queue by priority, then run_at, then submission order.
CREATE INDEX jobs_leasable ON jobs (tenant, queue, priority DESC, run_at, id)
    WHERE state = 'queued';
-- Promotion of due scheduled jobs.
CREATE INDEX jobs_scheduled ON jobs (run_at) WHERE state = 'scheduled';
-- The reaper: running jobs by lease expiry.
CREATE INDEX jobs_running_lease ON jobs (lease_expires_at) WHERE state = 'running';
CREATE INDEX jobs_state ON jobs (state, queue);
CREATE INDEX jobs_created_at ON jobs (created_at);
CREATE INDEX jobs_worker_id ON jobs (worker_id) WHERE worker_id IS NOT NULL;
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE UNIQUE INDEX jobs_idempotency ON jobs (tenant, queue, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- A tenant's ListJobs: newest first within the tenant.
CREATE INDEX jobs_tenant ON jobs (tenant, id);

-- The tenant a worker serves ('*': every tenant) and the principal that registered it:
-- only that principal may act as the worker.
ALTER TABLE workers ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
ALTER TABLE workers ADD COLUMN subject TEXT NOT NULL DEFAULT '';

ALTER TABLE job_events ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
UPDATE job_events SET tenant = (SELECT j.tenant FROM jobs j WHERE j.id = job_events.job_id)
WHERE EXISTS (SELECT 1 FROM jobs j WHERE j.id = job_events.job_id AND j.tenant <> job_events.tenant);
