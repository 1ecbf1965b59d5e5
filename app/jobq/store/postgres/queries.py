"""The job repository's SQL on PostgreSQL, by name.

A write's rows go in as one JSON document per table, read by `json_to_recordset` (ADR
0021: psycopg dumps a list parameter element by element in Python, a JSON document is one
C call), so a batch of any size is one statement; a write that touches jobs, job_events
and the NOTIFY channel is one statement of data-modifying CTEs. `{queued}` and the like
are the states' values (`jobq.store.changes.STATE_SQL`), filled in once at import.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from jobq.core.states import EventKind
from jobq.store.changes import END_COLUMNS, STATE_SQL

WORK_CHANNEL = "jobq_work"


@dataclasses.dataclass(frozen=True, slots=True)
class PgWrite:
    """One statement over JSON row sets: table name -> its columns; the rows of a table go
    in as one parameter, `%(<table>)s`, a JSON array of objects."""

    sql: str
    tables: Mapping[str, Sequence[str]]


# What a lease returns: what the worker runs and the server's start event, metrics and
# order need (rows.leased_from_row), not the whole row (ADR 0024).
LEASED = (
    "j.id, j.queue, j.tenant, j.type, j.payload, j.attempt, j.timeout, j.correlation_id,"
    " j.trace_context, j.priority, j.run_at, j.workflow_id"
)


def _sql(text: str) -> str:
    return text.format(**STATE_SQL, leased=LEASED)


JOB_COLUMNS = (
    ("id", "uuid"),
    ("queue", "text"),
    ("tenant", "text"),
    ("type", "text"),
    ("payload", "text"),
    ("state", "text"),
    ("priority", "int"),
    ("max_attempts", "int"),
    ("run_at", "timestamptz"),
    ("timeout", "interval"),
    ("expires_at", "timestamptz"),
    ("idempotency_key", "text"),
    ("correlation_id", "text"),
    ("trace_context", "jsonb"),
    ("rate_key", "text"),
    ("concurrency_key", "text"),
)
EVENT_COLUMNS = (
    ("id", "uuid"),
    ("job_id", "uuid"),
    ("queue", "text"),
    ("tenant", "text"),
    ("kind", "text"),
    ("from_state", "text"),
    ("to_state", "text"),
    ("attempt", "int"),
    ("at", "timestamptz"),
    ("details", "jsonb"),
)
END_TYPES = {
    "state": "text",
    "attempt_base": "int",
    "run_at": "timestamptz",
    "result": "text",
    "last_error": "text",
    "progress": "float8",
    "finished_at": "timestamptz",
}
ENDED_COLUMNS = (("id", "uuid"), *((c, END_TYPES[c]) for c in END_COLUMNS))


def _rows(table: str, columns: Sequence[tuple[str, str]], alias: str = "") -> str:
    """The rows of `table` (one JSON parameter) as a relation with typed columns."""
    fields = ", ".join(f"{name} {kind}" for name, kind in columns)
    return f"json_to_recordset(%({table})s::json) AS {alias or table}({fields})"


def _names(columns: Sequence[tuple[str, str]]) -> list[str]:
    return [name for name, _ in columns]


INSERT_EVENTS = f"""
INSERT INTO job_events (id, job_id, queue, tenant, kind, from_state, to_state, attempt, at,
                        details)
SELECT id, job_id, queue, tenant, kind, from_state, to_state, attempt, at, details
FROM {_rows("events", EVENT_COLUMNS)}
"""

# After the CTEs: one NOTIFY per queue with new leasable work, sent at commit. The payload
# names the sending server first, so that its own listener can tell its echo apart.
NOTIFY = f"""
SELECT pg_notify('{WORK_CHANNEL}', %(origin)s || ' ' || queue)
FROM {_rows("wake", (("queue", "text"),))}
"""

# Each new job's `submitted` event is derived here from its row (ADR 0023), as
# `changes.submitted` writes it for workflows: no event row is built in Python, and none
# crosses the wire. `details` drops what is empty, as `transitions.transition_event` does.
# The rows are read once, in order, so events take their seq in the order of the batch.
SUBMIT = PgWrite(
    _sql(
        f"""
WITH submit AS MATERIALIZED (
    SELECT * FROM {_rows("jobs", (*JOB_COLUMNS, ("event_id", "uuid")))}
), new_jobs AS (
    INSERT INTO jobs (id, queue, tenant, type, payload, state, priority, max_attempts, run_at,
                      timeout, expires_at, idempotency_key, correlation_id, trace_context,
                      rate_key, concurrency_key, created_at, updated_at)
    SELECT id, queue, tenant, type, payload, state, priority, max_attempts, run_at, timeout,
           expires_at, idempotency_key, correlation_id, trace_context,
           rate_key, concurrency_key, %(now)s, %(now)s
    FROM submit
), new_events AS (
    INSERT INTO job_events (id, job_id, queue, tenant, kind, from_state, to_state, attempt, at,
                            details)
    SELECT event_id, id, queue, tenant, '{EventKind.SUBMITTED.value}', NULL, state, 0, %(now)s,
           jsonb_strip_nulls(jsonb_build_object(
               'type', type,
               'correlation_id', NULLIF(correlation_id, ''),
               'trace_context', NULLIF(trace_context, '{{{{}}}}'::jsonb)))
    FROM submit
)
{NOTIFY}
"""
    ),
    {"jobs": [*_names(JOB_COLUMNS), "event_id"], "wake": ["queue"]},
)

EVENTS = PgWrite(
    f"WITH new_events AS ({INSERT_EVENTS}) {NOTIFY}",
    {"events": _names(EVENT_COLUMNS), "wake": ["queue"]},
)

# Outcomes, reaped leases, releases and replays: the rows were read (and locked) first,
# so the new values are the whole story and nothing is read back.
END_LEASES = PgWrite(
    f"""
WITH done AS (
    UPDATE jobs j
    SET {", ".join(f"{c} = ended.{c}" for c in END_COLUMNS)},
        worker_id = NULL, lease_expires_at = NULL, updated_at = %(now)s
    FROM {_rows("jobs", ENDED_COLUMNS, "ended")}
    WHERE j.id = ended.id
), new_events AS ({INSERT_EVENTS})
{NOTIFY}
""",
    {"jobs": _names(ENDED_COLUMNS), "events": _names(EVENT_COLUMNS), "wake": ["queue"]},
)

ENSURE_QUEUES = """
WITH wanted AS (
    SELECT * FROM unnest(%(tenants)s::text[], %(names)s::text[]) AS wanted(tenant, name)
), created AS (
    INSERT INTO queues (name, tenant, paused, weight, max_attempts, backoff_base, backoff_max,
                        lease_timeout, default_ttl, concurrency_limit, retention, created_at,
                        updated_at)
    SELECT name, tenant, %(paused)s, %(weight)s, %(max_attempts)s, %(backoff_base)s,
           %(backoff_max)s, %(lease_timeout)s, %(default_ttl)s::interval, %(concurrency_limit)s,
           %(retention)s, %(now)s, %(now)s
    FROM wanted ORDER BY tenant, name
    ON CONFLICT (tenant, name) DO NOTHING
    RETURNING *
)
SELECT * FROM created
UNION ALL
SELECT q.* FROM queues q JOIN wanted ON q.tenant = wanted.tenant AND q.name = wanted.name
"""

QUEUES_BY_KEY = """
SELECT q.* FROM queues q
JOIN unnest(%(tenants)s::text[], %(names)s::text[]) AS k(tenant, name)
  ON q.tenant = k.tenant AND q.name = k.name
"""

QUEUES_NAMED = """
SELECT * FROM queues
WHERE name = ANY(%(names)s::text[]) AND (%(tenant)s::text IS NULL OR tenant = %(tenant)s)
ORDER BY name, tenant
"""

JOB_BY_KEY = """
SELECT * FROM jobs WHERE tenant = %(tenant)s AND queue = %(queue)s AND idempotency_key = %(key)s
"""

JOBS_BY_ID = "SELECT * FROM jobs WHERE id = ANY(%(ids)s::uuid[])"
# In id order, so that two transactions locking overlapping batches cannot deadlock.
JOBS_BY_ID_LOCKED = JOBS_BY_ID + " ORDER BY id FOR UPDATE"

# What an outcome reads of the jobs it ends (rows.held_from_row): no payload.
HELD_LOCKED = (
    "SELECT id, queue, tenant, state, attempt, attempt_base, max_attempts, run_at, worker_id,"
    " cancel_requested, result, last_error, progress, started_at, finished_at, correlation_id,"
    " trace_context, workflow_id, concurrency_key FROM jobs WHERE id = ANY(%(ids)s::uuid[])"
    " ORDER BY id FOR UPDATE"
)

EVENTS_OF_JOB = "SELECT * FROM job_events WHERE job_id = %(id)s::uuid ORDER BY seq"

PAGE = "SELECT * FROM jobs {where} ORDER BY id DESC LIMIT %(limit)s"
FILTERS = {
    "queue": "queue = %(queue)s",
    "states": "state = ANY(%(states)s::text[])",
    "type": "type = %(type)s",
    "tenant": "tenant = %(tenant)s",
    "created_after": "created_at > %(created_after)s",
    "created_before": "created_at < %(created_before)s",
    "scope": "tenant = %(scope)s",
}
AFTER = "id < %(after)s::uuid"


# SKIP LOCKED: replicas leasing at once take different rows instead of queueing on locks.
LEASE = _sql(
    """
WITH picked AS (
    SELECT id FROM jobs
    WHERE tenant = %(tenant)s AND queue = %(queue)s AND state = {queued}
      AND (expires_at IS NULL OR expires_at > %(now)s)
      AND (cardinality(%(types)s::text[]) = 0 OR type = ANY(%(types)s::text[]))
    ORDER BY priority DESC, run_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE jobs j
SET state = {running}, attempt = j.attempt + 1, worker_id = %(worker)s,
    lease_expires_at = %(lease_until)s, started_at = %(now)s, updated_at = %(now)s,
    cancel_requested = false, progress = 0, progress_message = ''
FROM picked WHERE j.id = picked.id
RETURNING {leased}
"""
)

# Limited queues (ADR 0017): lock candidates, decide, then claim only the chosen ones.
LEASE_CANDIDATES = _sql(
    """
SELECT id, rate_key, concurrency_key FROM jobs
WHERE tenant = %(tenant)s AND queue = %(queue)s AND state = {queued}
  AND (expires_at IS NULL OR expires_at > %(now)s)
  AND (cardinality(%(types)s::text[]) = 0 OR type = ANY(%(types)s::text[]))
ORDER BY priority DESC, run_at, id
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED
"""
)

LEASE_IDS = _sql(
    """
UPDATE jobs j
SET state = {running}, attempt = j.attempt + 1, worker_id = %(worker)s,
    lease_expires_at = %(lease_until)s, started_at = %(now)s, updated_at = %(now)s,
    cancel_requested = false, progress = 0, progress_message = ''
WHERE j.id = ANY(%(ids)s::uuid[]) AND j.state = {queued}
RETURNING {leased}
"""
)

# Running jobs of a queue by concurrency key (NULL: jobs without one), for its caps.
RUNNING_IN_TENANT = _sql(
    "SELECT count(*) AS n FROM jobs WHERE tenant = %(tenant)s AND state = {running}"
)

RUNNING_BY_KEY = _sql(
    "SELECT concurrency_key, count(*) AS n FROM jobs WHERE tenant = %(tenant)s"
    " AND queue = %(queue)s AND state = {running} GROUP BY concurrency_key"
)

# A heartbeat in one statement: the worker touched, every lease named that it still holds
# extended, and one summary row (the worker's state, how many were extended, the earliest
# expiry) followed by a row per extended job whose cancel was requested, usually none: a
# beat of 500 leases that changes nothing returns one row (ADR 0024). No worker row: no
# summary state, and the caller refuses the beat (its transaction rolls back).
HEARTBEAT = _sql(
    """
WITH touched AS (
    UPDATE workers SET last_heartbeat = %(now)s,
        state = CASE WHEN state = {worker_lost} THEN {worker_active} ELSE state END
    WHERE id = %(worker)s
    RETURNING state
), held AS (
    SELECT j.id, q.lease_timeout
    FROM jobs j
    JOIN unnest(%(ids)s::uuid[], %(attempts)s::int[]) AS l(id, attempt)
      ON j.id = l.id AND j.attempt = l.attempt
    JOIN queues q ON q.tenant = j.tenant AND q.name = j.queue
    WHERE j.state = {running} AND j.worker_id = %(worker)s
      AND (%(tenant)s::text IS NULL OR j.tenant = %(tenant)s)
    ORDER BY j.id
    FOR UPDATE OF j
), extended AS (
    UPDATE jobs j SET lease_expires_at = %(now)s + held.lease_timeout
    FROM held WHERE j.id = held.id
    RETURNING j.id, j.cancel_requested, j.lease_expires_at
)
SELECT NULL::uuid AS cancel, (SELECT state FROM touched) AS worker_state,
       count(*) AS extended, min(lease_expires_at) AS until
FROM extended
UNION ALL
SELECT id, NULL, NULL, NULL FROM extended WHERE cancel_requested
"""
)

PROGRESS = """
UPDATE jobs SET progress = %(progress)s, progress_message = %(message)s, updated_at = %(now)s
WHERE id = %(id)s
"""

SET_CANCEL = """
UPDATE jobs SET state = %(state)s, finished_at = %(finished_at)s,
    cancel_requested = %(cancel_requested)s, updated_at = %(now)s
WHERE id = %(id)s
"""

PROMOTE = _sql(
    """
WITH due AS (
    SELECT id FROM jobs
    WHERE state = {scheduled} AND run_at <= %(now)s
      AND (expires_at IS NULL OR expires_at > %(now)s)
    ORDER BY run_at LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE jobs j SET state = {queued}, updated_at = %(now)s FROM due WHERE j.id = due.id
RETURNING j.*
"""
)

EXPIRABLE = _sql(
    "SELECT * FROM jobs WHERE state IN ({pending_states}) AND expires_at <= %(now)s"
    " LIMIT %(limit)s FOR UPDATE SKIP LOCKED"
)
EXPIRE = _sql(
    "UPDATE jobs SET state = {expired}, finished_at = %(now)s, updated_at = %(now)s"
    " WHERE id = ANY(%(ids)s::uuid[])"
)

_EXPIRED = "SELECT * FROM jobs WHERE state = {running} AND lease_expires_at <= %(now)s{grace}"
_ORDER = " ORDER BY lease_expires_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED"
EXPIRED_LEASES = _sql(_EXPIRED.replace("{grace}", "") + _ORDER)
EXPIRED_LEASES_AFTER_GRACE = _sql(
    _EXPIRED.replace(
        "{grace}",
        " AND (tenant, queue) IN (SELECT tenant, name FROM queues"
        " WHERE %(leader_since)s::timestamptz + lease_timeout <= %(now)s)",
    )
    + _ORDER
)

DELETE_FINISHED = """
DELETE FROM jobs WHERE id IN (
    SELECT j.id FROM jobs j JOIN queues q ON q.tenant = j.tenant AND q.name = j.queue
    WHERE j.finished_at IS NOT NULL AND j.finished_at < %(now)s - q.retention
    LIMIT %(limit)s FOR UPDATE OF j SKIP LOCKED)
"""

DEAD_OF_QUEUE = _sql(
    "SELECT * FROM jobs WHERE state = {dead} AND queue = %(queue)s"
    " AND (%(tenant)s::text IS NULL OR tenant = %(tenant)s) FOR UPDATE"
)

DELETE_JOBS = "DELETE FROM jobs WHERE id = ANY(%(ids)s::uuid[])"


# -- workers -------------------------------------------------------------------------

# A worker id stays its registering subject's until it deregisters (stopped) with no
# job still running on it; rows from before tenancy (subject '') may be claimed.
UPSERT_WORKER = _sql(
    """
INSERT INTO workers (id, hostname, queues, task_types, task_queues, capacity, state,
                     started_at, last_heartbeat, tenant, subject)
VALUES (%(id)s, %(hostname)s, %(queues)s, %(task_types)s, %(task_queues)s::jsonb,
        %(capacity)s, %(state)s, %(started_at)s, %(last_heartbeat)s, %(tenant)s, %(subject)s)
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
WORKER_BY_ID = (
    _WORKERS + " WHERE w.id = %(id)s AND (%(tenant)s::text IS NULL OR w.tenant = %(tenant)s)"
)
# The worker alone, for the checks of every worker call: its jobs are not counted.
WORKER_ROW_BY_ID = """
SELECT w.*, 0 AS in_flight FROM workers w
WHERE w.id = %(id)s AND (%(tenant)s::text IS NULL OR w.tenant = %(tenant)s)
"""
WORKERS = (
    _WORKERS + " WHERE (%(tenant)s::text IS NULL OR w.tenant = %(tenant)s) ORDER BY w.started_at"
)
SET_WORKER_STATE = """
UPDATE workers SET state = %(state)s
WHERE id = %(id)s AND (%(tenant)s::text IS NULL OR tenant = %(tenant)s)
"""

# -- the outbox ----------------------------------------------------------------------

UNPUBLISHED = "SELECT * FROM job_events WHERE published_at IS NULL ORDER BY seq LIMIT %(limit)s"
MARK_PUBLISHED = "UPDATE job_events SET published_at = %(at)s WHERE id = ANY(%(ids)s::uuid[])"
BACKLOG = "SELECT count(*) AS n, min(at) AS oldest FROM job_events WHERE published_at IS NULL"
PRUNE_EVENTS = """
DELETE FROM job_events WHERE seq IN (
    SELECT e.seq FROM job_events e WHERE e.at < %(before)s
       AND (e.published_at IS NOT NULL OR %(unpublished)s)
       AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = e.job_id AND j.finished_at IS NULL)
    ORDER BY e.at LIMIT %(limit)s
    FOR UPDATE OF e SKIP LOCKED)
"""

# -- API keys ------------------------------------------------------------------------

INSERT_KEY = """
INSERT INTO api_keys (id, secret_sha256, tenant, roles, queues, description, created_at,
                      expires_at)
VALUES (%(id)s, %(secret_sha256)s, %(tenant)s, %(roles)s, %(queues)s, %(description)s,
        %(created_at)s, %(expires_at)s)
ON CONFLICT (id) DO NOTHING
"""
KEY_BY_ID = "SELECT * FROM api_keys WHERE id = %(id)s"
KEYS = """
SELECT * FROM api_keys WHERE (%(tenant)s::text IS NULL OR tenant = %(tenant)s)
ORDER BY created_at, id
"""
# COALESCE: a second revoke keeps the first time.
REVOKE_KEY = """
UPDATE api_keys SET revoked_at = COALESCE(revoked_at, %(now)s) WHERE id = %(id)s RETURNING *
"""

# -- queues --------------------------------------------------------------------------

INSERT_QUEUE = """
INSERT INTO queues (name, tenant, paused, weight, max_attempts, backoff_base, backoff_max,
                    lease_timeout, default_ttl, concurrency_limit, retention, rate_limit,
                    rate_burst, key_rate_limit, key_rate_burst, key_concurrency_limit,
                    created_at, updated_at)
VALUES (%(name)s, %(tenant)s, %(paused)s, %(weight)s, %(max_attempts)s, %(backoff_base)s,
        %(backoff_max)s, %(lease_timeout)s, %(default_ttl)s, %(concurrency_limit)s,
        %(retention)s, %(rate_limit)s, %(rate_burst)s, %(key_rate_limit)s, %(key_rate_burst)s,
        %(key_concurrency_limit)s, %(now)s, %(now)s)
"""
UPDATE_QUEUE = """
UPDATE queues SET paused = %(paused)s, weight = %(weight)s, max_attempts = %(max_attempts)s,
    backoff_base = %(backoff_base)s, backoff_max = %(backoff_max)s,
    lease_timeout = %(lease_timeout)s, default_ttl = %(default_ttl)s,
    concurrency_limit = %(concurrency_limit)s, retention = %(retention)s,
    rate_limit = %(rate_limit)s, rate_burst = %(rate_burst)s,
    key_rate_limit = %(key_rate_limit)s, key_rate_burst = %(key_rate_burst)s,
    key_concurrency_limit = %(key_concurrency_limit)s, updated_at = %(now)s
WHERE tenant = %(tenant)s AND name = %(name)s
"""
QUEUE_LOCKED = "SELECT * FROM queues WHERE tenant = %(tenant)s AND name = %(name)s FOR UPDATE"
ALL_QUEUES = """
SELECT * FROM queues WHERE (%(tenant)s::text IS NULL OR tenant = %(tenant)s)
ORDER BY name, tenant
"""
QUEUES_IN_SCOPE = """
SELECT * FROM queues
WHERE (%(name)s::text IS NULL OR name = %(name)s)
  AND (%(tenant)s::text IS NULL OR tenant = %(tenant)s)
"""
STATE_COUNTS = """
SELECT j.tenant, j.queue, j.state, count(*) AS n, min(j.run_at) AS oldest
FROM jobs j JOIN unnest(%(tenants)s::text[], %(names)s::text[]) AS k(tenant, name)
  ON j.tenant = k.tenant AND j.queue = k.name
GROUP BY j.tenant, j.queue, j.state
"""
# Unfinished states only: read through jobs_state, which holds only those (and dead) jobs,
# not the history that finished jobs leave in the table.
UNFINISHED_COUNTS = _sql(
    """
SELECT j.tenant, j.queue, j.state, count(*) AS n, min(j.run_at) AS oldest
FROM jobs j JOIN unnest(%(tenants)s::text[], %(names)s::text[]) AS k(tenant, name)
  ON j.tenant = k.tenant AND j.queue = k.name
WHERE j.state IN ({unfinished_states})
GROUP BY j.tenant, j.queue, j.state
"""
)
PURGEABLE = _sql(
    "SELECT * FROM jobs WHERE tenant = %(tenant)s AND queue = %(queue)s"
    " AND state IN ({pending_states}) ORDER BY id FOR UPDATE"
)
PURGE = _sql(
    "UPDATE jobs SET state = {cancelled}, finished_at = %(now)s, updated_at = %(now)s"
    " WHERE id = ANY(%(ids)s::uuid[])"
)
# One chunk of a purge in one statement: the pending jobs locked, cancelled and their
# `cancelled` events written (the event the store's PURGE move writes, details as
# transitions.job_event builds them), with nothing passing through Python but the ids of
# workflow jobs, whose descendants follow_up cancels. Event ids are UUIDv7 like new_id's:
# the millisecond clock over the first 48 bits of a random UUID, version nibble 7.
PURGE_CHUNK = _sql(
    """
WITH doomed AS (
    SELECT id, state AS was FROM jobs
    WHERE tenant = %(tenant)s AND queue = %(queue)s AND state IN ({pending_states})
    ORDER BY id LIMIT %(limit)s FOR UPDATE
), purged AS (
    UPDATE jobs j SET state = {cancelled}, finished_at = %(now)s, updated_at = %(now)s
    FROM doomed WHERE j.id = doomed.id
    RETURNING j.id, j.queue, j.tenant, j.attempt, j.correlation_id, j.trace_context,
              j.workflow_id, doomed.was
), new_events AS (
    INSERT INTO job_events (id, job_id, queue, tenant, kind, from_state, to_state, attempt, at,
                            details)
    SELECT encode(set_byte(overlay(uuid_send(gen_random_uuid()) PLACING
                   substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint)
                   FROM 3) FROM 1 FOR 6), 6, (get_byte(uuid_send(gen_random_uuid()), 6) & 15)
                   | 112), 'hex')::uuid,
           id, queue, tenant, 'cancelled', was, {cancelled}, attempt, %(now)s,
           jsonb_strip_nulls(jsonb_build_object(
               'correlation_id', NULLIF(correlation_id, ''),
               'trace_context', NULLIF(trace_context, '{{}}'::jsonb),
               'workflow_id', workflow_id,
               'reason', %(reason)s::text))
    FROM purged
)
SELECT id::text AS id, workflow_id::text AS workflow_id FROM purged
"""
)


# -- workflows (ADR 0016) --------------------------------------------------------------

INSERT_WORKFLOW = """
INSERT INTO workflows (id, tenant, name, on_failure, created_at)
VALUES (%(id)s, %(tenant)s, %(name)s, %(on_failure)s, %(created_at)s)
"""

NODE_COLUMNS = (
    *JOB_COLUMNS,
    ("workflow_id", "uuid"),
    ("workflow_key", "text"),
    ("waiting_on", "int"),
)
EDGE_COLUMNS = (("tenant", "text"), ("workflow_id", "uuid"), ("parent", "uuid"), ("child", "uuid"))

# A workflow's jobs, their edges and their events in one statement. The edges' foreign keys
# are checked at the statement's end, when every job of the CTE is in.
SUBMIT_NODES = PgWrite(
    f"""
WITH new_jobs AS (
    INSERT INTO jobs (id, queue, tenant, type, payload, state, priority, max_attempts, run_at,
                      timeout, expires_at, idempotency_key, correlation_id, trace_context,
                      workflow_id, workflow_key, waiting_on, created_at, updated_at)
    SELECT id, queue, tenant, type, payload, state, priority, max_attempts, run_at, timeout,
           expires_at, idempotency_key, correlation_id, trace_context,
           workflow_id, workflow_key, waiting_on, %(now)s, %(now)s
    FROM {_rows("jobs", NODE_COLUMNS)}
), new_edges AS (
    INSERT INTO job_dependencies (tenant, workflow_id, parent_id, child_id)
    SELECT tenant, workflow_id, parent, child FROM {_rows("edges", EDGE_COLUMNS)}
), new_events AS ({INSERT_EVENTS})
{NOTIFY}
""",
    {
        "jobs": _names(NODE_COLUMNS),
        "edges": _names(EDGE_COLUMNS),
        "events": _names(EVENT_COLUMNS),
        "wake": ["queue"],
    },
)

WORKFLOW_BY_ID = """
SELECT * FROM workflows
WHERE id = %(id)s::uuid AND (%(tenant)s::text IS NULL OR tenant = %(tenant)s)
"""
WORKFLOWS_BY_ID = "SELECT * FROM workflows WHERE id = ANY(%(ids)s::uuid[])"
# Ids were drawn parents first, so id order is an order in which parents come first.
WORKFLOW_JOBS = "SELECT * FROM jobs WHERE workflow_id = %(id)s::uuid ORDER BY id"
WORKFLOW_EDGES = """
SELECT parent_id, child_id FROM job_dependencies WHERE workflow_id = %(id)s::uuid
"""
# In id order, as every statement that locks workflow jobs: parents (smaller ids) before
# children, so a completion (a parent locked, then its children) and a workflow's cancel
# (all in id order) cannot wait on each other in a cycle.
UNFINISHED_WORKFLOW_JOBS_LOCKED = _sql(
    "SELECT * FROM jobs WHERE workflow_id = %(id)s::uuid"
    " AND state IN ({waiting}, {scheduled}, {queued}, {running}) ORDER BY id FOR UPDATE"
)
CANCEL_JOBS = _sql(
    "UPDATE jobs SET state = {cancelled}, finished_at = %(now)s, updated_at = %(now)s,"
    " last_error = COALESCE(%(error)s, last_error) WHERE id = ANY(%(ids)s::uuid[])"
)
REQUEST_CANCEL = (
    "UPDATE jobs SET cancel_requested = true, updated_at = %(now)s WHERE id = ANY(%(ids)s::uuid[])"
)

# The last parent's success: each waiting child of the parents named loses one parent per
# edge from them, and becomes due at zero. The child's row lock is what closes the race of
# two parents finishing at once: the second UPDATE waits for the first to commit and then
# (READ COMMITTED) re-reads the row, so it subtracts from the first one's result, and only
# one of them sees zero. Children are locked in id order, so batches cannot deadlock.
READY_CHILDREN = _sql(
    """
WITH done AS (
    SELECT child_id, count(*) AS n FROM job_dependencies
    WHERE parent_id = ANY(%(ids)s::uuid[]) GROUP BY child_id
), locked AS (
    SELECT j.id, done.n FROM jobs j JOIN done ON j.id = done.child_id
    WHERE j.state = {waiting} ORDER BY j.id FOR UPDATE OF j
)
UPDATE jobs j
SET waiting_on = j.waiting_on - locked.n,
    state = CASE WHEN j.waiting_on - locked.n > 0 THEN {waiting}
                 WHEN j.run_at > %(now)s THEN {scheduled} ELSE {queued} END,
    -- Due from now, not from its submission: what submit-to-start measures is the wait for
    -- a worker, not for the parents.
    run_at = CASE WHEN j.waiting_on - locked.n > 0 THEN j.run_at
                  ELSE GREATEST(j.run_at, %(now)s) END,
    updated_at = %(now)s
FROM locked WHERE j.id = locked.id AND j.state = {waiting}
RETURNING j.*
"""
)

# Every waiting descendant of the jobs named: none of them can ever run.
CANCEL_DESCENDANTS = _sql(
    """
WITH RECURSIVE below(id) AS (
    SELECT child_id FROM job_dependencies WHERE parent_id = ANY(%(ids)s::uuid[])
    UNION
    SELECT d.child_id FROM job_dependencies d JOIN below ON d.parent_id = below.id
), locked AS (
    SELECT j.id FROM jobs j JOIN below ON j.id = below.id
    WHERE j.state = {waiting} ORDER BY j.id FOR UPDATE OF j
)
UPDATE jobs j SET state = {cancelled}, finished_at = %(now)s, updated_at = %(now)s,
    last_error = %(error)s
FROM locked WHERE j.id = locked.id AND j.state = {waiting}
RETURNING j.*
"""
)

# A node's parents' results, for its context (newest parents first is no order: by id).
PARENT_RESULTS = _sql(
    """
SELECT p.workflow_key AS key, p.result FROM job_dependencies d JOIN jobs p ON p.id = d.parent_id
WHERE d.child_id = %(id)s::uuid AND p.state = {succeeded} ORDER BY p.id
"""
)

# schedules (ADR 0014): a row is written whole (`jobq.store.sql.schedules`).
_SCHEDULE_VALUES = """%(id)s, %(tenant)s, %(name)s, %(cron)s, %(every)s, %(time_zone)s,
    %(job_type)s, %(queue)s, %(payload)s, %(priority)s, %(max_attempts)s, %(overlap)s,
    %(catch_up)s, %(catch_up_window)s, %(jitter)s, %(start_at)s, %(end_at)s, %(paused)s,
    %(next_fire_at)s, %(buffered_fire_at)s, %(last_job_id)s::uuid, %(created_at)s,
    %(updated_at)s"""
INSERT_SCHEDULE = f"""
INSERT INTO schedules (id, tenant, name, cron, every, time_zone, job_type, queue, payload,
                       priority, max_attempts, overlap, catch_up, catch_up_window, jitter,
                       start_at, end_at, paused, next_fire_at, buffered_fire_at, last_job_id,
                       created_at, updated_at)
VALUES ({_SCHEDULE_VALUES})
ON CONFLICT (tenant, name) DO NOTHING
"""
UPDATE_SCHEDULE = """
UPDATE schedules SET cron = %(cron)s, every = %(every)s, time_zone = %(time_zone)s,
    job_type = %(job_type)s, queue = %(queue)s, payload = %(payload)s,
    priority = %(priority)s, max_attempts = %(max_attempts)s, overlap = %(overlap)s,
    catch_up = %(catch_up)s, catch_up_window = %(catch_up_window)s, jitter = %(jitter)s,
    start_at = %(start_at)s, end_at = %(end_at)s, paused = %(paused)s,
    next_fire_at = %(next_fire_at)s, buffered_fire_at = %(buffered_fire_at)s,
    last_job_id = %(last_job_id)s::uuid, updated_at = %(updated_at)s
WHERE id = %(id)s::uuid
"""
SCHEDULE_BY_NAME = "SELECT * FROM schedules WHERE tenant = %(tenant)s AND name = %(name)s"
SCHEDULE_BY_NAME_LOCKED = SCHEDULE_BY_NAME + " FOR UPDATE"
SCHEDULES = """
SELECT * FROM schedules WHERE %(tenant)s::text IS NULL OR tenant = %(tenant)s
ORDER BY tenant, name
"""
DELETE_SCHEDULE = "DELETE FROM schedules WHERE tenant = %(tenant)s AND name = %(name)s"
DUE_SCHEDULES = """
SELECT * FROM schedules
WHERE NOT paused AND (next_fire_at <= %(now)s OR buffered_fire_at IS NOT NULL)
ORDER BY next_fire_at NULLS LAST, id LIMIT %(limit)s
"""
# Compare and set: only a leader that read the row as it still is may advance it.
ADVANCE_SCHEDULE = """
UPDATE schedules SET next_fire_at = %(next)s, buffered_fire_at = %(buffered)s,
                     last_job_id = %(last_job_id)s::uuid
WHERE id = %(id)s::uuid AND next_fire_at IS NOT DISTINCT FROM %(expected_next)s
  AND buffered_fire_at IS NOT DISTINCT FROM %(expected_buffered)s
RETURNING tenant, name, queue
"""
INSERT_SCHEDULE_RUN = """
INSERT INTO schedule_runs (schedule_id, fire_at, manual, outcome, job_id, recorded_at)
VALUES (%(schedule_id)s::uuid, %(fire_at)s, %(manual)s, %(outcome)s, %(job_id)s::uuid,
        %(recorded_at)s)
-- A buffered fire time is recorded again once it is submitted; any other run is kept.
ON CONFLICT (schedule_id, fire_at, manual) DO UPDATE
  SET outcome = excluded.outcome, job_id = excluded.job_id, recorded_at = excluded.recorded_at
  WHERE schedule_runs.outcome = 'buffered' AND excluded.outcome <> 'buffered'
"""
PRUNE_SCHEDULE_RUNS = """
DELETE FROM schedule_runs WHERE schedule_id = %(id)s::uuid AND (fire_at, manual) IN (
  SELECT fire_at, manual FROM schedule_runs WHERE schedule_id = %(id)s::uuid
  ORDER BY fire_at DESC, manual DESC OFFSET %(keep)s)
"""
SCHEDULE_RUNS = """
SELECT * FROM schedule_runs WHERE schedule_id = %(id)s::uuid
ORDER BY fire_at DESC, manual DESC LIMIT %(limit)s
"""
