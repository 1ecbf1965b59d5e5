-- The embedded store's schema. Times are integer microseconds since the Unix epoch (UTC).

CREATE TABLE queues (
    name              TEXT PRIMARY KEY,
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
    updated_at        INTEGER NOT NULL
);

CREATE TABLE jobs (
    id               TEXT PRIMARY KEY,  -- UUIDv7: sorts by submission time
    queue            TEXT    NOT NULL REFERENCES queues(name),
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
    finished_at      INTEGER
);

-- Leasing: the next queued job of a queue by priority, then run_at, then submission order.
CREATE INDEX jobs_leasable ON jobs (queue, priority DESC, run_at, id) WHERE state = 'queued';
-- Promotion of due scheduled jobs.
CREATE INDEX jobs_scheduled ON jobs (run_at) WHERE state = 'scheduled';
-- The reaper: running jobs by lease expiry.
CREATE INDEX jobs_running_lease ON jobs (lease_expires_at) WHERE state = 'running';
CREATE INDEX jobs_state ON jobs (state, queue);
CREATE INDEX jobs_created_at ON jobs (created_at);
CREATE INDEX jobs_worker_id ON jobs (worker_id) WHERE worker_id IS NOT NULL;
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE UNIQUE INDEX jobs_idempotency ON jobs (queue, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE workers (
    id             TEXT PRIMARY KEY,
    hostname       TEXT    NOT NULL,
    queues         TEXT    NOT NULL,  -- JSON array
    task_types     TEXT    NOT NULL DEFAULT '[]',
    capacity       INTEGER NOT NULL,
    state          TEXT    NOT NULL,
    started_at     INTEGER NOT NULL,
    last_heartbeat INTEGER NOT NULL
);

-- Append-only: the audit log of every transition, and the outbox for Kafka.
CREATE TABLE job_events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,  -- publication order
    id           TEXT    NOT NULL UNIQUE,            -- the event id consumers dedupe on
    job_id       TEXT    NOT NULL,
    queue        TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    from_state   TEXT,
    to_state     TEXT,
    attempt      INTEGER NOT NULL,
    at           INTEGER NOT NULL,
    details      TEXT    NOT NULL DEFAULT '{}',
    published_at INTEGER
);

CREATE INDEX job_events_job ON job_events (job_id, seq);
CREATE INDEX job_events_unpublished ON job_events (seq) WHERE published_at IS NULL;
