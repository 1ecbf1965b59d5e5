-- Schedules (ADR 0014): a schedule is named by (tenant, name), like a queue. next_fire_at,
-- buffered_fire_at and last_job_id are the leader's bookkeeping, changed only by a
-- compare-and-set. Times are microseconds since the epoch, spans microseconds.
-- depends: 0004_tenancy

CREATE TABLE schedules (
    id                 TEXT    PRIMARY KEY,
    tenant             TEXT    NOT NULL,
    name               TEXT    NOT NULL,
    cron               TEXT,
    every_us           INTEGER,
    time_zone          TEXT    NOT NULL,
    job_type           TEXT    NOT NULL,
    queue              TEXT    NOT NULL,
    payload            TEXT    NOT NULL,
    priority           INTEGER NOT NULL,
    max_attempts       INTEGER NOT NULL,
    overlap            TEXT    NOT NULL,
    catch_up           TEXT    NOT NULL,
    catch_up_window_us INTEGER NOT NULL,
    jitter_us          INTEGER NOT NULL,
    start_at           INTEGER,
    end_at             INTEGER,
    paused             INTEGER NOT NULL DEFAULT 0,
    next_fire_at       INTEGER,
    buffered_fire_at   INTEGER,
    last_job_id        TEXT,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    UNIQUE (tenant, name),
    CHECK ((cron IS NULL) <> (every_us IS NULL))
);

CREATE INDEX schedules_due ON schedules (next_fire_at) WHERE paused = 0;

CREATE TABLE schedule_runs (
    schedule_id TEXT    NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    fire_at     INTEGER NOT NULL,
    manual      INTEGER NOT NULL,
    outcome     TEXT    NOT NULL,
    job_id      TEXT,
    recorded_at INTEGER NOT NULL,
    PRIMARY KEY (schedule_id, fire_at, manual)
);
