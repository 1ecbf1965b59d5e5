"""Validation of what clients send. Every rejection names the field."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Callable

from jobq.core import bounds
from jobq.core.bounds import Limits as Limits  # re-exported: callers build it from settings
from jobq.core.errors import InvalidArgument
from jobq.core.model import DEFAULT_QUEUE, DEFAULT_TENANT, NewJob, Outcome, OutcomeKind, QueueConfig

QUEUE_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
TASK_TYPE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,127}$")
TENANT = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
PRIORITY_MIN, PRIORITY_MAX = -100, 100
MAX_ATTEMPTS_LIMIT = 1000
IDEMPOTENCY_KEY_MAX = 200
# Queue limits: beyond these a value is a typo (a million jobs a second is no limit).
RATE_MAX = 1_000_000.0
CAP_MAX = 1_000_000
MAX_DELAY = bounds.DURATION_MAX["delay"]


@dataclasses.dataclass(frozen=True, slots=True)
class JobSpec:
    """What a client may set on a job. None means "not given"."""

    type: str
    payload: str = "null"
    queue: str = ""
    priority: int = 0
    max_attempts: int = 0
    run_at: dt.datetime | None = None
    delay: dt.timedelta | None = None
    timeout: dt.timedelta | None = None
    ttl: dt.timedelta | None = None
    idempotency_key: str = ""
    tenant: str = ""
    rate_key: str = ""
    concurrency_key: str = ""
    correlation_id: str = ""
    trace_context: dict[str, str] = dataclasses.field(default_factory=dict)


def validate_queue_name(name: str, field: str = "queue") -> str:
    # fullmatch: `$` would let a trailing newline through.
    if not QUEUE_NAME.fullmatch(name):
        raise InvalidArgument(
            field,
            f"{name!r} is not a queue name: lowercase letters, digits, '.', '_', '-', 1-63 chars",
        )
    return name


def validate_json(text: str, field: str, limits: Limits) -> str:
    return bounds.json_text(text, field, limits)


def _non_negative(value: dt.timedelta | None, field: str) -> dt.timedelta | None:
    if value is not None and value < dt.timedelta(0):
        raise InvalidArgument(field, "must not be negative")
    return value


def validate_job(
    spec: JobSpec,
    *,
    now: dt.datetime,
    limits: Limits,
    new_id: Callable[[], str],
    tenant: str | None = None,
    queue: str | None = None,
) -> NewJob:
    """Turn a client's JobSpec into a NewJob with absolute times, or raise InvalidArgument.

    `tenant`, `queue`: in place of the spec's (the server's resolved ones), without the cost
    of a copy of the spec per job."""
    if not spec.type:
        raise InvalidArgument("type", "must not be empty")
    if not TASK_TYPE.fullmatch(spec.type):
        raise InvalidArgument(
            "type", f"{spec.type!r} is not a task name (letters, digits, . _ : -)"
        )
    queue = validate_queue_name((spec.queue if queue is None else queue) or DEFAULT_QUEUE)
    tenant = (spec.tenant if tenant is None else tenant) or DEFAULT_TENANT
    if not TENANT.fullmatch(tenant):
        raise InvalidArgument("tenant", f"{tenant!r} is not a tenant name")
    payload = validate_json(spec.payload or "null", "payload", limits)
    if not PRIORITY_MIN <= spec.priority <= PRIORITY_MAX:
        raise InvalidArgument("priority", f"must be in {PRIORITY_MIN}..{PRIORITY_MAX}")
    if not 0 <= spec.max_attempts <= MAX_ATTEMPTS_LIMIT:
        raise InvalidArgument(
            "max_attempts", f"must be in 0..{MAX_ATTEMPTS_LIMIT} (0: the queue's)"
        )
    delay = _non_negative(spec.delay, "delay")
    timeout = _non_negative(spec.timeout, "timeout")
    ttl = _non_negative(spec.ttl, "ttl")
    if delay is not None and spec.run_at is not None:
        raise InvalidArgument("delay", "give run_at or delay, not both")
    for name, value in (("delay", delay), ("timeout", timeout), ("ttl", ttl)):
        if value is not None and value > bounds.DURATION_MAX[name]:
            raise InvalidArgument(name, f"must be at most {bounds.DURATION_MAX[name].days} days")
    run_at = spec.run_at or bounds.later(now, delay or dt.timedelta(0), "delay")
    if run_at.tzinfo is None:
        raise InvalidArgument("run_at", "must carry a timezone")
    expires_at = bounds.later(run_at, ttl, "ttl") if ttl else None
    bounds.text(spec.idempotency_key, "idempotency_key", IDEMPOTENCY_KEY_MAX)
    bounds.field_text(spec.rate_key, "rate_key", "rate_key")
    bounds.field_text(spec.concurrency_key, "concurrency_key", "concurrency_key")
    # Checked here as well as on the wire: the servicer fills both from request metadata.
    bounds.field_text(spec.correlation_id, "correlation_id", "correlation_id")
    bounds.trace_context(spec.trace_context, "trace_context")
    return NewJob(
        id=new_id(),
        queue=queue,
        type=spec.type,
        payload=payload,
        priority=spec.priority,
        max_attempts=spec.max_attempts or None,
        run_at=max(run_at, now) if spec.run_at is None else run_at,
        timeout=timeout if timeout else None,
        expires_at=expires_at,
        ttl=ttl if ttl else None,
        idempotency_key=spec.idempotency_key or None,
        tenant=tenant,
        correlation_id=spec.correlation_id,
        trace_context=dict(spec.trace_context),
        rate_key=spec.rate_key or None,
        concurrency_key=spec.concurrency_key or None,
    )


def validate_queue(queue: QueueConfig) -> QueueConfig:
    validate_queue_name(queue.name, "queue.name")
    if not TENANT.fullmatch(queue.tenant):
        raise InvalidArgument("queue.tenant", f"{queue.tenant!r} is not a tenant name")
    if not 1 <= queue.weight <= 1000:
        raise InvalidArgument("queue.weight", "must be in 1..1000")
    if not 1 <= queue.max_attempts <= MAX_ATTEMPTS_LIMIT:
        raise InvalidArgument("queue.max_attempts", f"must be in 1..{MAX_ATTEMPTS_LIMIT}")
    for field in ("concurrency_limit", "key_concurrency_limit"):
        if not 0 <= getattr(queue, field) <= CAP_MAX:
            raise InvalidArgument(f"queue.{field}", f"must be in 0..{CAP_MAX} (0: unlimited)")
    for field in ("rate_limit", "key_rate_limit"):
        rate = getattr(queue, field)
        # `not <=` also refuses NaN.
        if not 0 <= rate <= RATE_MAX:
            raise InvalidArgument(
                f"queue.{field}", f"must be in 0..{RATE_MAX:g} a second (0: none)"
            )
    for field in ("rate_burst", "key_rate_burst"):
        if not 0 <= getattr(queue, field) <= CAP_MAX:
            raise InvalidArgument(f"queue.{field}", f"must be in 0..{CAP_MAX} (0: one)")
    for field in ("backoff_base", "backoff_max", "lease_timeout", "retention", "default_ttl"):
        value = getattr(queue, field)
        if value is not None and value > bounds.DURATION_MAX[field]:
            raise InvalidArgument(
                f"queue.{field}", f"must be at most {bounds.DURATION_MAX[field].days} days"
            )
    for field in ("backoff_base", "backoff_max", "lease_timeout", "retention"):
        if getattr(queue, field) <= dt.timedelta(0):
            raise InvalidArgument(f"queue.{field}", "must be positive")
    if queue.backoff_max < queue.backoff_base:
        raise InvalidArgument("queue.backoff_max", "must not be less than backoff_base")
    if queue.default_ttl is not None and queue.default_ttl <= dt.timedelta(0):
        raise InvalidArgument("queue.default_ttl", "must be positive (unset: no expiry)")
    return queue


def validate_outcome(outcome: Outcome, field: str, limits: Limits) -> Outcome:
    """A worker's outcome made storable: its result must be JSON within the limits (a task's
    result is the task author's to fix); its error text is sanitised, never refused."""
    if outcome.kind is OutcomeKind.COMPLETED:
        validate_json(outcome.result or "null", f"{field}.completed.result", limits)
        return outcome
    if outcome.error is None:
        return outcome
    return dataclasses.replace(outcome, error=bounds.error_text(outcome.error, limits))
