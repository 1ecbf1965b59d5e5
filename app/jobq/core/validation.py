"""Validation of what clients send. Every rejection names the field."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from collections.abc import Callable

from jobq.core.errors import InvalidArgument
from jobq.core.model import DEFAULT_QUEUE, DEFAULT_TENANT, NewJob, QueueConfig

QUEUE_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
TASK_TYPE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,127}$")
TENANT = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
PRIORITY_MIN, PRIORITY_MAX = -100, 100
MAX_ATTEMPTS_LIMIT = 1000
IDEMPOTENCY_KEY_MAX = 200
MAX_DELAY = dt.timedelta(days=365)


@dataclasses.dataclass(frozen=True, slots=True)
class Limits:
    max_payload_bytes: int = 1024 * 1024
    max_batch: int = 1000


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
    correlation_id: str = ""
    trace_context: dict[str, str] = dataclasses.field(default_factory=dict)


def validate_queue_name(name: str, field: str = "queue") -> str:
    if not QUEUE_NAME.match(name):
        raise InvalidArgument(
            field,
            f"{name!r} is not a queue name: lowercase letters, digits, '.', '_', '-', 1-63 chars",
        )
    return name


def validate_json(text: str, field: str, limit: int) -> str:
    size = len(text.encode())
    if size > limit:
        raise InvalidArgument(field, f"{size} bytes is over the limit of {limit}")
    try:
        json.loads(text)
    except ValueError as exc:
        raise InvalidArgument(field, f"not valid JSON ({exc})") from None
    return text


def _non_negative(value: dt.timedelta | None, field: str) -> dt.timedelta | None:
    if value is not None and value < dt.timedelta(0):
        raise InvalidArgument(field, "must not be negative")
    return value


def validate_job(
    spec: JobSpec, *, now: dt.datetime, limits: Limits, new_id: Callable[[], str]
) -> NewJob:
    """Turn a client's JobSpec into a NewJob with absolute times, or raise InvalidArgument."""
    if not spec.type:
        raise InvalidArgument("type", "must not be empty")
    if not TASK_TYPE.match(spec.type):
        raise InvalidArgument(
            "type", f"{spec.type!r} is not a task name (letters, digits, . _ : -)"
        )
    queue = validate_queue_name(spec.queue or DEFAULT_QUEUE)
    tenant = spec.tenant or DEFAULT_TENANT
    if not TENANT.match(tenant):
        raise InvalidArgument("tenant", f"{tenant!r} is not a tenant name")
    payload = validate_json(spec.payload or "null", "payload", limits.max_payload_bytes)
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
    if delay is not None and delay > MAX_DELAY:
        raise InvalidArgument("delay", "must be at most 365 days")
    run_at = spec.run_at or now + (delay or dt.timedelta(0))
    if run_at.tzinfo is None:
        raise InvalidArgument("run_at", "must carry a timezone")
    if len(spec.idempotency_key) > IDEMPOTENCY_KEY_MAX:
        raise InvalidArgument(
            "idempotency_key", f"must be at most {IDEMPOTENCY_KEY_MAX} characters"
        )
    return NewJob(
        id=new_id(),
        queue=queue,
        type=spec.type,
        payload=payload,
        priority=spec.priority,
        max_attempts=spec.max_attempts or None,
        run_at=max(run_at, now) if spec.run_at is None else run_at,
        timeout=timeout if timeout else None,
        expires_at=run_at + ttl if ttl else None,
        ttl=ttl if ttl else None,
        idempotency_key=spec.idempotency_key or None,
        tenant=tenant,
        correlation_id=spec.correlation_id,
        trace_context=dict(spec.trace_context),
    )


def validate_queue(queue: QueueConfig) -> QueueConfig:
    validate_queue_name(queue.name, "queue.name")
    if not TENANT.match(queue.tenant):
        raise InvalidArgument("queue.tenant", f"{queue.tenant!r} is not a tenant name")
    if not 1 <= queue.weight <= 1000:
        raise InvalidArgument("queue.weight", "must be in 1..1000")
    if not 1 <= queue.max_attempts <= MAX_ATTEMPTS_LIMIT:
        raise InvalidArgument("queue.max_attempts", f"must be in 1..{MAX_ATTEMPTS_LIMIT}")
    if queue.concurrency_limit < 0:
        raise InvalidArgument("queue.concurrency_limit", "must not be negative (0: unlimited)")
    for field in ("backoff_base", "backoff_max", "lease_timeout", "retention"):
        if getattr(queue, field) <= dt.timedelta(0):
            raise InvalidArgument(f"queue.{field}", "must be positive")
    if queue.backoff_max < queue.backoff_base:
        raise InvalidArgument("queue.backoff_max", "must not be less than backoff_base")
    if queue.default_ttl is not None and queue.default_ttl <= dt.timedelta(0):
        raise InvalidArgument("queue.default_ttl", "must be positive (unset: no expiry)")
    return queue
