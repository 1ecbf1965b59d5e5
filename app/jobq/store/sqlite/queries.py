"""The job repository's SQL on SQLite, by name.

Lists go in as JSON text and are read with `json_each`, so every query is one fixed
text whatever the batch size. Writes are `executemany` per table: in-process, there is
no round trip to save. Times are integer microseconds since the epoch (`db.to_us`).
`{queued}` and the like are the states' values (`jobq.store.changes.STATE_SQL`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from jobq.core.states import EventKind
from jobq.store.changes import END_COLUMNS, STATE_SQL


@dataclasses.dataclass(frozen=True, slots=True)
class SqliteWrite:
    """Statements run with `executemany`, each over the rows of one table, in order."""

    steps: Sequence[tuple[str, str]]


def _sql(text: str) -> str:
    return text.format(**STATE_SQL)


def _ids(name: str) -> str:
    return f"(SELECT value FROM json_each(:{name}))"


INSERT_JOB = """
INSERT INTO jobs (id, queue, tenant, type, payload, state, priority, max_attempts, run_at,
                  timeout_us, expires_at, idempotency_key, correlation_id, trace_context,
                  rate_key, concurrency_key, created_at, updated_at)
VALUES (:id, :queue, :tenant, :type, :payload, :state, :priority, :max_attempts, :run_at,
        :timeout, :expires_at, :idempotency_key, :correlation_id, :trace_context, :rate_key,
        :concurrency_key, :now, :now)
"""

INSERT_EVENT = """
INSERT INTO job_events (id, job_id, queue, tenant, kind, from_state, to_state, attempt, at,
                        details)
VALUES (:id, :job_id, :queue, :tenant, :kind, :from_state, :to_state, :attempt, :at, :details)
"""

# A new job's `submitted` event, derived from its row as PostgreSQL's SUBMIT does (ADR
# 0023); json_patch drops the null members, as `transitions.transition_event` drops None.
INSERT_SUBMITTED_EVENT = f"""
INSERT INTO job_events (id, job_id, queue, tenant, kind, from_state, to_state, attempt, at,
                        details)
VALUES (:event_id, :id, :queue, :tenant, '{EventKind.SUBMITTED.value}', NULL, :state, 0, :now,
        json_patch('{{}}', json_object(
            'type', :type,
            'correlation_id', NULLIF(:correlation_id, ''),
            'trace_context', CASE WHEN :trace_context = '{{}}' THEN NULL
                                  ELSE json(:trace_context) END)))
"""

END_LEASE = f"""
UPDATE jobs SET {", ".join(f"{c} = :{c}" for c in END_COLUMNS)},
    worker_id = NULL, lease_expires_at = NULL, updated_at = :now
WHERE id = :id
"""

# One server per file: nobody else to wake (the in-process notifier does it here).
SUBMIT = SqliteWrite((("jobs", INSERT_JOB), ("jobs", INSERT_SUBMITTED_EVENT)))
EVENTS = SqliteWrite((("events", INSERT_EVENT),))
END_LEASES = SqliteWrite((("jobs", END_LEASE), ("events", INSERT_EVENT)))

_KEYS = (
    "(SELECT t.value AS tenant, n.value AS name FROM json_each(:tenants) t"
    " JOIN json_each(:names) n ON n.key = t.key)"
)

QUEUES_BY_KEY = f"""
SELECT q.* FROM queues q JOIN {_KEYS} k ON q.tenant = k.tenant AND q.name = k.name
"""

ENSURE_QUEUES = (
    f"""
INSERT OR IGNORE INTO queues (name, tenant, paused, weight, max_attempts, backoff_base_us,
                              backoff_max_us, lease_timeout_us, default_ttl_us,
                              concurrency_limit, retention_us, created_at, updated_at)
SELECT k.name, k.tenant, :paused, :weight, :max_attempts, :backoff_base, :backoff_max,
       :lease_timeout, :default_ttl, :concurrency_limit, :retention, :now, :now
FROM {_KEYS} k
""",
    QUEUES_BY_KEY,
)

QUEUES_NAMED = f"""
SELECT * FROM queues WHERE name IN {_ids("names")} AND (:tenant IS NULL OR tenant = :tenant)
ORDER BY name, tenant
"""

JOB_BY_KEY = """
SELECT * FROM jobs WHERE tenant = :tenant AND queue = :queue AND idempotency_key = :key
"""

JOBS_BY_ID = f"SELECT * FROM jobs WHERE id IN {_ids('ids')}"
# The single writer is the lock: a write transaction (BEGIN IMMEDIATE) excludes the rest.
JOBS_BY_ID_LOCKED = JOBS_BY_ID

# What an outcome reads of the jobs it ends (rows.held_from_row): no payload.
HELD_LOCKED = (
    "SELECT id, queue, tenant, state, attempt, attempt_base, max_attempts, run_at, worker_id,"
    " cancel_requested, result, last_error, progress, started_at, finished_at, correlation_id,"
    f" trace_context, workflow_id, concurrency_key FROM jobs WHERE id IN {_ids('ids')}"
)

EVENTS_OF_JOB = "SELECT * FROM job_events WHERE job_id = :id ORDER BY seq"

PAGE = "SELECT * FROM jobs {where} ORDER BY id DESC LIMIT :limit"
FILTERS = {
    "queue": "queue = :queue",
    "states": f"state IN {_ids('states')}",
    "type": "type = :type",
    "tenant": "tenant = :tenant",
    "created_after": "created_at > :created_after",
    "created_before": "created_at < :created_before",
    "scope": "tenant = :scope",
}
AFTER = "id < :after"

# What a lease returns (rows.leased_from_row), not the whole row (ADR 0024).
LEASED = (
    "id, queue, tenant, type, payload, attempt, timeout_us, correlation_id, trace_context,"
    " priority, run_at, workflow_id"
)

LEASE = _sql(
    f"""
UPDATE jobs
SET state = {{running}}, attempt = attempt + 1, worker_id = :worker,
    lease_expires_at = :lease_until, started_at = :now, updated_at = :now,
    cancel_requested = 0, progress = 0, progress_message = ''
WHERE id IN (
    SELECT id FROM jobs
    WHERE tenant = :tenant AND queue = :queue AND state = {{queued}}
      AND (expires_at IS NULL OR expires_at > :now)
      AND (json_array_length(:types) = 0 OR type IN {_ids("types")})
    ORDER BY priority DESC, run_at, id
    LIMIT :limit)
RETURNING {LEASED}
"""
)

# Limited queues (ADR 0017): pick candidates, decide, then claim only the chosen ones. The
# write transaction excludes every other writer, so nothing else takes them meanwhile.
LEASE_CANDIDATES = _sql(
    f"""
SELECT id, rate_key, concurrency_key FROM jobs
WHERE tenant = :tenant AND queue = :queue AND state = {{queued}}
  AND (expires_at IS NULL OR expires_at > :now)
  AND (json_array_length(:types) = 0 OR type IN {_ids("types")})
ORDER BY priority DESC, run_at, id
LIMIT :limit
"""
)

LEASE_IDS = _sql(
    f"""
UPDATE jobs
SET state = {{running}}, attempt = attempt + 1, worker_id = :worker,
    lease_expires_at = :lease_until, started_at = :now, updated_at = :now,
    cancel_requested = 0, progress = 0, progress_message = ''
WHERE id IN {_ids("ids")} AND state = {{queued}}
RETURNING {LEASED}
"""
)

RUNNING_IN_TENANT = _sql(
    "SELECT count(*) AS n FROM jobs WHERE tenant = :tenant AND state = {running}"
)

RUNNING_BY_KEY = _sql(
    "SELECT concurrency_key, count(*) AS n FROM jobs WHERE tenant = :tenant AND queue = :queue"
    " AND state = {running} GROUP BY concurrency_key"
)

# A heartbeat as one script: the worker touched, the leases it still holds extended, then
# one summary row (the worker's state, how many are held, the earliest expiry) and a row
# per held job whose cancel was requested (PostgreSQL's HEARTBEAT returns the same rows).
_HELD = f"""
WHERE id IN {_ids("ids")}
  AND state = {{running}} AND worker_id = :worker AND (:tenant IS NULL OR tenant = :tenant)
  AND EXISTS (SELECT 1 FROM json_each(:ids) i JOIN json_each(:attempts) a ON a.key = i.key
              WHERE i.value = jobs.id AND a.value = jobs.attempt)
"""
HEARTBEAT = (
    _sql(
        """
UPDATE workers SET last_heartbeat = :now,
    state = CASE WHEN state = {worker_lost} THEN {worker_active} ELSE state END
WHERE id = :worker
"""
    ),
    _sql(
        f"""
UPDATE jobs
SET lease_expires_at = :now + (SELECT q.lease_timeout_us FROM queues q
                               WHERE q.tenant = jobs.tenant AND q.name = jobs.queue)
{_HELD}
"""
    ),
    _sql(
        f"""
SELECT NULL AS cancel, (SELECT state FROM workers WHERE id = :worker) AS worker_state,
       count(*) AS extended, min(lease_expires_at) AS until
FROM jobs {_HELD}
UNION ALL
SELECT id, NULL, NULL, NULL FROM jobs {_HELD} AND cancel_requested
"""
    ),
)

PROGRESS = """
UPDATE jobs SET progress = :progress, progress_message = :message, updated_at = :now
WHERE id = :id
"""

SET_CANCEL = """
UPDATE jobs SET state = :state, finished_at = :finished_at,
    cancel_requested = :cancel_requested, updated_at = :now
WHERE id = :id
"""

PROMOTE = _sql(
    """
UPDATE jobs SET state = {queued}, updated_at = :now
WHERE id IN (
    SELECT id FROM jobs
    WHERE state = {scheduled} AND run_at <= :now AND (expires_at IS NULL OR expires_at > :now)
    ORDER BY run_at LIMIT :limit)
RETURNING *
"""
)

EXPIRABLE = _sql(
    "SELECT * FROM jobs WHERE state IN ({pending_states}) AND expires_at <= :now LIMIT :limit"
)
EXPIRE = _sql(
    "UPDATE jobs SET state = {expired}, finished_at = :now, updated_at = :now"
    f" WHERE id IN {_ids('ids')}"
)

_EXPIRED = "SELECT * FROM jobs WHERE state = {running} AND lease_expires_at <= :now"
_ORDER = " ORDER BY lease_expires_at LIMIT :limit"
EXPIRED_LEASES = _sql(_EXPIRED + _ORDER)
EXPIRED_LEASES_AFTER_GRACE = _sql(
    _EXPIRED + " AND (tenant, queue) IN (SELECT tenant, name FROM queues"
    " WHERE :leader_since + lease_timeout_us <= :now)" + _ORDER
)

DELETE_FINISHED = """
DELETE FROM jobs WHERE id IN (
    SELECT j.id FROM jobs j JOIN queues q ON q.tenant = j.tenant AND q.name = j.queue
    WHERE j.finished_at IS NOT NULL AND j.finished_at < :now - q.retention_us
    LIMIT :limit)
"""

DEAD_OF_QUEUE = _sql(
    "SELECT * FROM jobs WHERE state = {dead} AND queue = :queue"
    " AND (:tenant IS NULL OR tenant = :tenant)"
)

DELETE_JOBS = f"DELETE FROM jobs WHERE id IN {_ids('ids')}"


# -- workers -------------------------------------------------------------------------

UPSERT_WORKER = _sql(
    """
INSERT INTO workers (id, hostname, queues, task_types, task_queues, capacity, state,
                     started_at, last_heartbeat, tenant, subject)
VALUES (:id, :hostname, :queues, :task_types, :task_queues, :capacity, :state, :started_at,
        :last_heartbeat, :tenant, :subject)
ON CONFLICT (id) DO UPDATE SET hostname = excluded.hostname, queues = excluded.queues,
    task_types = excluded.task_types, task_queues = excluded.task_queues,
    capacity = excluded.capacity, state = excluded.state,
    last_heartbeat = excluded.last_heartbeat, tenant = excluded.tenant,
    subject = excluded.subject
WHERE workers.subject = excluded.subject
   OR ((workers.subject = '' OR workers.state = {worker_stopped})
       AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.worker_id = workers.id
                       AND j.state = {running}))
RETURNING id
"""
)

_WORKERS = _sql(
    """
SELECT w.*, (SELECT count(*) FROM jobs j WHERE j.worker_id = w.id AND j.state = {running})
       AS in_flight
FROM workers w
"""
)
WORKER_BY_ID = _WORKERS + " WHERE w.id = :id AND (:tenant IS NULL OR w.tenant = :tenant)"
# The worker alone, for the checks of every worker call: its jobs are not counted.
WORKER_ROW_BY_ID = (
    "SELECT w.*, 0 AS in_flight FROM workers w"
    " WHERE w.id = :id AND (:tenant IS NULL OR w.tenant = :tenant)"
)
WORKERS = _WORKERS + " WHERE (:tenant IS NULL OR w.tenant = :tenant) ORDER BY w.started_at"
SET_WORKER_STATE = """
UPDATE workers SET state = :state WHERE id = :id AND (:tenant IS NULL OR tenant = :tenant)
"""

# -- the outbox ----------------------------------------------------------------------

UNPUBLISHED = "SELECT * FROM job_events WHERE published_at IS NULL ORDER BY seq LIMIT :limit"
MARK_PUBLISHED = f"UPDATE job_events SET published_at = :at WHERE id IN {_ids('ids')}"
BACKLOG = "SELECT count(*) AS n, min(at) AS oldest FROM job_events WHERE published_at IS NULL"
PRUNE_EVENTS = """
DELETE FROM job_events WHERE seq IN (
    SELECT e.seq FROM job_events e WHERE e.at < :before
       AND (e.published_at IS NOT NULL OR :unpublished)
       AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = e.job_id AND j.finished_at IS NULL)
    ORDER BY e.at LIMIT :limit)
"""

# -- API keys ------------------------------------------------------------------------

INSERT_KEY = """
INSERT INTO api_keys (id, secret_sha256, tenant, roles, queues, description, created_at,
                      expires_at)
VALUES (:id, :secret_sha256, :tenant, :roles, :queues, :description, :created_at,
        :expires_at)
ON CONFLICT (id) DO NOTHING
"""
KEY_BY_ID = "SELECT * FROM api_keys WHERE id = :id"
KEYS = """
SELECT * FROM api_keys WHERE (:tenant IS NULL OR tenant = :tenant) ORDER BY created_at, id
"""
# COALESCE: a second revoke keeps the first time.
REVOKE_KEY = """
UPDATE api_keys SET revoked_at = COALESCE(revoked_at, :now) WHERE id = :id RETURNING *
"""

# -- queues --------------------------------------------------------------------------

INSERT_QUEUE = """
INSERT INTO queues (name, tenant, paused, weight, max_attempts, backoff_base_us, backoff_max_us,
                    lease_timeout_us, default_ttl_us, concurrency_limit, retention_us,
                    rate_limit, rate_burst, key_rate_limit, key_rate_burst,
                    key_concurrency_limit, created_at, updated_at)
VALUES (:name, :tenant, :paused, :weight, :max_attempts, :backoff_base, :backoff_max,
        :lease_timeout, :default_ttl, :concurrency_limit, :retention, :rate_limit, :rate_burst,
        :key_rate_limit, :key_rate_burst, :key_concurrency_limit, :now, :now)
"""
UPDATE_QUEUE = """
UPDATE queues SET paused = :paused, weight = :weight, max_attempts = :max_attempts,
    backoff_base_us = :backoff_base, backoff_max_us = :backoff_max,
    lease_timeout_us = :lease_timeout, default_ttl_us = :default_ttl,
    concurrency_limit = :concurrency_limit, retention_us = :retention,
    rate_limit = :rate_limit, rate_burst = :rate_burst, key_rate_limit = :key_rate_limit,
    key_rate_burst = :key_rate_burst, key_concurrency_limit = :key_concurrency_limit,
    updated_at = :now
WHERE tenant = :tenant AND name = :name
"""
QUEUE_LOCKED = "SELECT * FROM queues WHERE tenant = :tenant AND name = :name"
ALL_QUEUES = """
SELECT * FROM queues WHERE (:tenant IS NULL OR tenant = :tenant) ORDER BY name, tenant
"""
QUEUES_IN_SCOPE = """
SELECT * FROM queues
WHERE (:name IS NULL OR name = :name) AND (:tenant IS NULL OR tenant = :tenant)
"""
STATE_COUNTS = f"""
SELECT j.tenant, j.queue, j.state, count(*) AS n, min(j.run_at) AS oldest
FROM jobs j JOIN {_KEYS} k ON j.tenant = k.tenant AND j.queue = k.name
GROUP BY j.tenant, j.queue, j.state
"""
# Unfinished states only: read through jobs_state (state, queue), so it costs the backlog,
# not the history that finished jobs leave in the table.
UNFINISHED_COUNTS = _sql(
    f"""
SELECT j.tenant, j.queue, j.state, count(*) AS n, min(j.run_at) AS oldest
FROM jobs j JOIN {_KEYS} k ON j.tenant = k.tenant AND j.queue = k.name
WHERE j.state IN ({{unfinished_states}})
GROUP BY j.tenant, j.queue, j.state
"""
)
PURGEABLE = _sql(
    "SELECT * FROM jobs WHERE tenant = :tenant AND queue = :queue"
    " AND state IN ({pending_states}) ORDER BY id"
)
PURGE = _sql(
    "UPDATE jobs SET state = {cancelled}, finished_at = :now, updated_at = :now"
    f" WHERE id IN {_ids('ids')}"
)
# No set-based purge here (no UUIDv7 in SQLite's SQL): jobs are purged as read.
PURGE_CHUNK = None


# -- workflows (ADR 0016) --------------------------------------------------------------

INSERT_WORKFLOW = """
INSERT INTO workflows (id, tenant, name, on_failure, created_at)
VALUES (:id, :tenant, :name, :on_failure, :created_at)
"""
INSERT_NODE = """
INSERT INTO jobs (id, queue, tenant, type, payload, state, priority, max_attempts, run_at,
                  timeout_us, expires_at, idempotency_key, correlation_id, trace_context,
                  workflow_id, workflow_key, waiting_on, created_at, updated_at)
VALUES (:id, :queue, :tenant, :type, :payload, :state, :priority, :max_attempts, :run_at,
        :timeout, :expires_at, :idempotency_key, :correlation_id, :trace_context,
        :workflow_id, :workflow_key, :waiting_on, :now, :now)
"""
INSERT_EDGE = """
INSERT INTO job_dependencies (tenant, workflow_id, parent_id, child_id)
VALUES (:tenant, :workflow_id, :parent, :child)
"""
SUBMIT_NODES = SqliteWrite(
    (("jobs", INSERT_NODE), ("edges", INSERT_EDGE), ("events", INSERT_EVENT))
)

WORKFLOW_BY_ID = "SELECT * FROM workflows WHERE id = :id AND (:tenant IS NULL OR tenant = :tenant)"
WORKFLOWS_BY_ID = f"SELECT * FROM workflows WHERE id IN {_ids('ids')}"
WORKFLOW_JOBS = "SELECT * FROM jobs WHERE workflow_id = :id ORDER BY id"
WORKFLOW_EDGES = "SELECT parent_id, child_id FROM job_dependencies WHERE workflow_id = :id"
UNFINISHED_WORKFLOW_JOBS_LOCKED = _sql(
    "SELECT * FROM jobs WHERE workflow_id = :id"
    " AND state IN ({waiting}, {scheduled}, {queued}, {running}) ORDER BY id"
)
CANCEL_JOBS = _sql(
    "UPDATE jobs SET state = {cancelled}, finished_at = :now, updated_at = :now,"
    f" last_error = COALESCE(:error, last_error) WHERE id IN {_ids('ids')}"
)
REQUEST_CANCEL = (
    f"UPDATE jobs SET cancel_requested = 1, updated_at = :now WHERE id IN {_ids('ids')}"
)

# The single writer serialises completions: each sees the counts the previous one left.
_FROM_DONE = (
    "(SELECT count(*) FROM job_dependencies d WHERE d.child_id = jobs.id"
    f" AND d.parent_id IN {_ids('ids')})"
)
READY_CHILDREN = _sql(
    f"""
UPDATE jobs
SET waiting_on = waiting_on - {_FROM_DONE},
    state = CASE WHEN waiting_on - {_FROM_DONE} > 0 THEN {{waiting}}
                 WHEN run_at > :now THEN {{scheduled}} ELSE {{queued}} END,
    run_at = CASE WHEN waiting_on - {_FROM_DONE} > 0 THEN run_at ELSE max(run_at, :now) END,
    updated_at = :now
WHERE state = {{waiting}}
  AND id IN (SELECT child_id FROM job_dependencies WHERE parent_id IN {_ids("ids")})
RETURNING *
"""
)

CANCEL_DESCENDANTS = _sql(
    f"""
WITH RECURSIVE below(id) AS (
    SELECT child_id FROM job_dependencies WHERE parent_id IN {_ids("ids")}
    UNION
    SELECT d.child_id FROM job_dependencies d JOIN below ON d.parent_id = below.id
)
UPDATE jobs SET state = {{cancelled}}, finished_at = :now, updated_at = :now,
    last_error = :error
WHERE state = {{waiting}} AND id IN (SELECT id FROM below)
RETURNING *
"""
)

PARENT_RESULTS = _sql(
    """
SELECT p.workflow_key AS key, p.result FROM job_dependencies d JOIN jobs p ON p.id = d.parent_id
WHERE d.child_id = :id AND p.state = {succeeded} ORDER BY p.id
"""
)

# schedules (ADR 0014): a row is written whole (`jobq.store.sql.schedules`). Spans are
# integer microseconds in `*_us` columns, read back under the names the body uses.
_SCHEDULE_COLUMNS = """id, tenant, name, cron, every_us AS every, time_zone, job_type, queue,
    payload, priority, max_attempts, overlap, catch_up, catch_up_window_us AS catch_up_window,
    jitter_us AS jitter, start_at, end_at, paused, next_fire_at, buffered_fire_at, last_job_id,
    created_at, updated_at"""
INSERT_SCHEDULE = """
INSERT INTO schedules (id, tenant, name, cron, every_us, time_zone, job_type, queue, payload,
                       priority, max_attempts, overlap, catch_up, catch_up_window_us, jitter_us,
                       start_at, end_at, paused, next_fire_at, buffered_fire_at, last_job_id,
                       created_at, updated_at)
VALUES (:id, :tenant, :name, :cron, :every, :time_zone, :job_type, :queue, :payload,
        :priority, :max_attempts, :overlap, :catch_up, :catch_up_window, :jitter,
        :start_at, :end_at, :paused, :next_fire_at, :buffered_fire_at, :last_job_id,
        :created_at, :updated_at)
ON CONFLICT (tenant, name) DO NOTHING
"""
UPDATE_SCHEDULE = """
UPDATE schedules SET cron = :cron, every_us = :every, time_zone = :time_zone,
    job_type = :job_type, queue = :queue, payload = :payload, priority = :priority,
    max_attempts = :max_attempts, overlap = :overlap, catch_up = :catch_up,
    catch_up_window_us = :catch_up_window, jitter_us = :jitter, start_at = :start_at,
    end_at = :end_at, paused = :paused, next_fire_at = :next_fire_at,
    buffered_fire_at = :buffered_fire_at, last_job_id = :last_job_id, updated_at = :updated_at
WHERE id = :id
"""
SCHEDULE_BY_NAME = (
    f"SELECT {_SCHEDULE_COLUMNS} FROM schedules WHERE tenant = :tenant AND name = :name"
)
SCHEDULE_BY_NAME_LOCKED = SCHEDULE_BY_NAME  # the write transaction excludes other writers
SCHEDULES = f"""
SELECT {_SCHEDULE_COLUMNS} FROM schedules WHERE :tenant IS NULL OR tenant = :tenant
ORDER BY tenant, name
"""
DELETE_SCHEDULE = "DELETE FROM schedules WHERE tenant = :tenant AND name = :name"
DUE_SCHEDULES = f"""
SELECT {_SCHEDULE_COLUMNS} FROM schedules
WHERE paused = 0 AND (next_fire_at <= :now OR buffered_fire_at IS NOT NULL)
ORDER BY next_fire_at IS NULL, next_fire_at, id LIMIT :limit
"""
# Compare and set (see PostgreSQL's); the SELECT answers only if the UPDATE changed the row.
ADVANCE_SCHEDULE = (
    """
UPDATE schedules SET next_fire_at = :next, buffered_fire_at = :buffered,
                     last_job_id = :last_job_id
WHERE id = :id AND next_fire_at IS :expected_next AND buffered_fire_at IS :expected_buffered
""",
    "SELECT tenant, name, queue FROM schedules WHERE id = :id AND changes() = 1",
)
INSERT_SCHEDULE_RUN = """
INSERT INTO schedule_runs (schedule_id, fire_at, manual, outcome, job_id, recorded_at)
VALUES (:schedule_id, :fire_at, :manual, :outcome, :job_id, :recorded_at)
-- A buffered fire time is recorded again once it is submitted; any other run is kept.
ON CONFLICT (schedule_id, fire_at, manual) DO UPDATE
  SET outcome = excluded.outcome, job_id = excluded.job_id, recorded_at = excluded.recorded_at
  WHERE schedule_runs.outcome = 'buffered' AND excluded.outcome <> 'buffered'
"""
PRUNE_SCHEDULE_RUNS = """
DELETE FROM schedule_runs WHERE schedule_id = :id AND (fire_at, manual) IN (
  SELECT fire_at, manual FROM schedule_runs WHERE schedule_id = :id
  ORDER BY fire_at DESC, manual DESC LIMIT -1 OFFSET :keep)
"""
SCHEDULE_RUNS = """
SELECT * FROM schedule_runs WHERE schedule_id = :id
ORDER BY fire_at DESC, manual DESC LIMIT :limit
"""
