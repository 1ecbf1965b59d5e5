-- The production schema (PostgreSQL 15+). Mirrors migrations/sqlite/0001_initial.sql.

CREATE TABLE queues (
    name              text PRIMARY KEY,
    tenant            text        NOT NULL DEFAULT 'default',
    paused            boolean     NOT NULL DEFAULT false,
    weight            integer     NOT NULL DEFAULT 1,
    max_attempts      integer     NOT NULL,
    backoff_base      interval    NOT NULL,
    backoff_max       interval    NOT NULL,
    lease_timeout     interval    NOT NULL,
    default_ttl       interval,
    concurrency_limit integer     NOT NULL DEFAULT 0,
    retention         interval    NOT NULL,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL
);

CREATE TABLE jobs (
    id               uuid PRIMARY KEY,  -- UUIDv7: sorts by submission time
    queue            text        NOT NULL REFERENCES queues (name),
    tenant           text        NOT NULL DEFAULT 'default',
    type             text        NOT NULL,
    payload          text        NOT NULL,  -- the client's JSON text, kept byte for byte
    state            text        NOT NULL,
    priority         integer     NOT NULL DEFAULT 0,
    attempt          integer     NOT NULL DEFAULT 0,
    attempt_base     integer     NOT NULL DEFAULT 0,
    max_attempts     integer     NOT NULL,
    run_at           timestamptz NOT NULL,
    timeout          interval,
    expires_at       timestamptz,
    lease_expires_at timestamptz,
    worker_id        text,
    idempotency_key  text,
    result           text,
    last_error       text,
    progress         double precision NOT NULL DEFAULT 0,
    progress_message text        NOT NULL DEFAULT '',
    cancel_requested boolean     NOT NULL DEFAULT false,
    correlation_id   text        NOT NULL DEFAULT '',
    trace_context    jsonb       NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    started_at       timestamptz,
    finished_at      timestamptz,
    CONSTRAINT jobs_state_known CHECK (state IN
        ('scheduled', 'queued', 'running', 'succeeded', 'dead', 'cancelled', 'expired'))
);

-- Leasing: the next queued jobs of a queue by priority, then run_at, then submission order.
CREATE INDEX jobs_leasable ON jobs (queue, priority DESC, run_at, id) WHERE state = 'queued';
-- Promotion of due scheduled jobs.
CREATE INDEX jobs_scheduled ON jobs (run_at) WHERE state = 'scheduled';
-- The reaper: running jobs by lease expiry.
CREATE INDEX jobs_running_lease ON jobs (lease_expires_at) WHERE state = 'running';
-- TTL expiry of jobs not started.
CREATE INDEX jobs_pending_expiry ON jobs (expires_at)
    WHERE state IN ('scheduled', 'queued') AND expires_at IS NOT NULL;
CREATE INDEX jobs_state ON jobs (state, queue);
CREATE INDEX jobs_priority ON jobs (priority);
CREATE INDEX jobs_created_at ON jobs (created_at);
CREATE INDEX jobs_worker_id ON jobs (worker_id) WHERE worker_id IS NOT NULL;
-- Retention: finished jobs by age.
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE UNIQUE INDEX jobs_idempotency ON jobs (queue, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE workers (
    id             text PRIMARY KEY,
    hostname       text        NOT NULL,
    queues         text[]      NOT NULL,
    task_types     text[]      NOT NULL DEFAULT '{}',
    capacity       integer     NOT NULL,
    state          text        NOT NULL,
    started_at     timestamptz NOT NULL,
    last_heartbeat timestamptz NOT NULL
);

-- Append-only: the audit log of every transition, and the outbox for Kafka.
CREATE TABLE job_events (
    seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- publication order
    id           uuid        NOT NULL UNIQUE,                      -- consumers dedupe on it
    job_id       uuid        NOT NULL,
    queue        text        NOT NULL,
    kind         text        NOT NULL,
    from_state   text,
    to_state     text,
    attempt      integer     NOT NULL,
    at           timestamptz NOT NULL,
    details      jsonb       NOT NULL DEFAULT '{}',
    published_at timestamptz
);

CREATE INDEX job_events_job ON job_events (job_id, seq);
CREATE INDEX job_events_unpublished ON job_events (seq) WHERE published_at IS NULL;
