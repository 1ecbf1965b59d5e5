-- Schedules (ADR 0014): a schedule is named by (tenant, name), like a queue. next_fire_at,
-- buffered_fire_at and last_job_id are the leader's bookkeeping, changed only by a
-- compare-and-set so that two replicas that both think they lead record a fire time once.
-- depends: 0004_tenancy

CREATE TABLE schedules (
    id               uuid        PRIMARY KEY,
    tenant           text        NOT NULL,
    name             text        NOT NULL,
    cron             text,
    every            interval,
    time_zone        text        NOT NULL,
    job_type         text        NOT NULL,
    queue            text        NOT NULL,
    payload          text        NOT NULL,  -- the client's JSON text, kept byte for byte
    priority         integer     NOT NULL,
    max_attempts     integer     NOT NULL,  -- 0: the queue's
    overlap          text        NOT NULL,
    catch_up         text        NOT NULL,
    catch_up_window  interval    NOT NULL,
    jitter           interval    NOT NULL,
    start_at         timestamptz,
    end_at           timestamptz,
    paused           boolean     NOT NULL DEFAULT false,
    next_fire_at     timestamptz,
    buffered_fire_at timestamptz,
    last_job_id      uuid,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    UNIQUE (tenant, name),
    CHECK ((cron IS NULL) <> (every IS NULL))
);

-- The leader's tick: schedules due to fire or holding a buffered fire time.
CREATE INDEX schedules_due ON schedules (next_fire_at) WHERE NOT paused;

-- What each fire time did; the newest RUNS_KEPT per schedule are kept.
CREATE TABLE schedule_runs (
    schedule_id uuid        NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    fire_at     timestamptz NOT NULL,
    manual      boolean     NOT NULL,
    outcome     text        NOT NULL,
    job_id      uuid,
    recorded_at timestamptz NOT NULL,
    PRIMARY KEY (schedule_id, fire_at, manual)
);
