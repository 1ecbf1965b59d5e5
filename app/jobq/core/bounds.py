"""Bounds on what clients send: strings, lists, times, durations and JSON.

Every string that reaches the store has a documented maximum and holds no NUL character:
PostgreSQL's text and jsonb refuse NUL, SQLite would keep it, so both stores refuse it here,
before either sees it. Times stay within what datetime, protobuf and both stores can hold
(years 1 to 9999), so no arithmetic on a stored time can overflow later.

The maxima are in README.md ("Input bounds"); the ones a user could need more of are
settings (JQ_MAX_PAYLOAD_BYTES, JQ_MAX_BATCH, JQ_MAX_JSON_DEPTH, JQ_MAX_ERROR_BYTES,
JQ_MAX_WORKFLOW_NODES).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re

from jobq.core.errors import InvalidArgument

# Characters, per string field name, wherever the field appears in a request. None: the
# field has a rule of its own (JSON text, bounded in bytes by Limits; a worker's error text,
# sanitised rather than refused).
TEXT_MAX: dict[str, int | None] = {
    "id": 64,
    "job_id": 64,
    "ids": 64,
    "page_token": 64,
    "worker_id": 128,
    "hostname": 255,
    "queue": 63,
    "queues": 63,
    "name": 63,
    "tenant": 63,
    "type": 128,
    "task_types": 128,
    "idempotency_key": 200,
    "rate_key": 200,
    "concurrency_key": 200,
    "correlation_id": 128,
    "reason": 1000,
    "message": 1000,
    "progress_message": 1000,
    "paths": 64,
    "roles": 32,
    "description": 200,
    "cron": 200,
    "time_zone": 64,
    "key": 128,  # a workflow node's key
    "depends_on": 128,
    "payload": None,
    "result": None,
    "error": None,
    "last_error": None,
}
# Entries per repeated field. None: JQ_MAX_BATCH (a batch of jobs, leases, outcomes or ids);
# a string: the Limits field that holds the bound (a setting of its own).
ITEMS_MAX: dict[str, int | str | None] = {
    "jobs": None,
    "leases": None,
    "outcomes": None,
    "ids": None,
    "queues": 256,
    "task_types": 1024,
    "task_queues": 1024,
    "states": 16,
    "paths": 16,
    "roles": 8,
    "next_fire_times": 16,
    "recent_runs": 256,
    "nodes": "max_workflow_nodes",
    "depends_on": "max_workflow_nodes",
}
TRACE_CONTEXT_ENTRIES = 32
TRACE_CONTEXT_KEY_MAX = 256
TRACE_CONTEXT_VALUE_MAX = 8192
TRACE_CONTEXT_TOTAL_MAX = 16384

# The longest each duration may be. A larger one is a typo or an attack, and would put a
# computed time (run_at, expires_at, a retry, a lease) past year 9999.
DAY = dt.timedelta(days=1)
DURATION_MAX: dict[str, dt.timedelta] = {
    "delay": 365 * DAY,
    "ttl": 3650 * DAY,
    "timeout": 30 * DAY,
    "retry_after": 365 * DAY,
    "wait": DAY,
    "backoff_base": 365 * DAY,
    "backoff_max": 365 * DAY,
    "lease_timeout": DAY,
    "default_ttl": 3650 * DAY,
    "retention": 3650 * DAY,
    "expires_in": 3650 * DAY,
    "interval": 365 * DAY,
    "catch_up_window": 365 * DAY,
    "jitter": DAY,
}

# protobuf Timestamp's own range: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999999999Z.
MIN_TIMESTAMP_SECONDS = -62_135_596_800
MAX_TIMESTAMP_SECONDS = 253_402_300_799
MAX_NANOS = 999_999_999
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MAX_DATETIME = dt.datetime.max.replace(tzinfo=dt.UTC)

JOB_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Skeleton of a JSON text: its strings (which may hold brackets) removed, then all but brackets.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
TRUNCATED = " [truncated from {} bytes]"


@dataclasses.dataclass(frozen=True, slots=True)
class Limits:
    """The bounds that are settings (JQ_MAX_*)."""

    max_payload_bytes: int = 1024 * 1024
    max_batch: int = 1000
    max_json_depth: int = 64
    max_error_bytes: int = 16384
    max_workflow_nodes: int = 1000

    def items_max(self, name: str) -> int:
        bound = ITEMS_MAX[name]
        if isinstance(bound, str):
            value: int = getattr(self, bound)
            return value
        return self.max_batch if bound is None else bound


def text(value: str, field: str, maximum: int) -> str:
    """`value` if it has no NUL and at most `maximum` characters, else InvalidArgument."""
    if len(value) > maximum:
        raise InvalidArgument(field, f"{len(value)} characters is over the limit of {maximum}")
    if "\x00" in value:
        raise InvalidArgument(field, "must not contain a NUL character")
    return value


def field_text(value: str, field: str, name: str) -> str:
    """A string field checked against its TEXT_MAX bound (`name` is the proto field name)."""
    bound = TEXT_MAX[name]
    return value if bound is None else text(value, field, bound)


def items(count: int, field: str, maximum: int) -> None:
    if count > maximum:
        raise InvalidArgument(field, f"{count} entries is over the limit of {maximum}")


def trace_context(entries: dict[str, str], field: str) -> dict[str, str]:
    items(len(entries), field, TRACE_CONTEXT_ENTRIES)
    total = 0
    for key, value in entries.items():
        text(key, f"{field}[{key[:40]!r}]", TRACE_CONTEXT_KEY_MAX)
        text(value, f"{field}[{key[:40]!r}]", TRACE_CONTEXT_VALUE_MAX)
        total += len(key) + len(value)
    if total > TRACE_CONTEXT_TOTAL_MAX:
        raise InvalidArgument(
            field, f"{total} characters in all is over the limit of {TRACE_CONTEXT_TOTAL_MAX}"
        )
    return entries


def is_job_id(value: str) -> bool:
    """A job id as the server writes it: a canonical, lower-case UUID.

    uuid.UUID also takes `urn:uuid:`, braces and bare hex, which neither store matches."""
    return JOB_ID.fullmatch(value) is not None


def page_token(value: str, field: str = "page_token") -> str:
    if value and not is_job_id(value):
        raise InvalidArgument(field, "is not a token from a previous page")
    return value


def timestamp(seconds: int, nanos: int, field: str) -> dt.datetime:
    """A protobuf Timestamp's parts as an aware datetime, if protobuf's range holds them."""
    if not MIN_TIMESTAMP_SECONDS <= seconds <= MAX_TIMESTAMP_SECONDS:
        raise InvalidArgument(field, "must be between 0001-01-01 and 9999-12-31 (UTC)")
    if not 0 <= nanos <= MAX_NANOS:
        raise InvalidArgument(field, f"nanos must be in 0..{MAX_NANOS}")
    return EPOCH + dt.timedelta(seconds=seconds, microseconds=nanos // 1000)


def duration(seconds: int, nanos: int, field: str, name: str) -> dt.timedelta:
    """A protobuf Duration's parts as a timedelta in 0..DURATION_MAX[name]."""
    if seconds < 0 or nanos < 0:
        raise InvalidArgument(field, "must not be negative")
    if nanos > MAX_NANOS:
        raise InvalidArgument(field, f"nanos must be in 0..{MAX_NANOS}")
    maximum = DURATION_MAX[name]
    # Compared as integers first: timedelta itself overflows past 999,999,999 days.
    if seconds > maximum // dt.timedelta(seconds=1):
        raise InvalidArgument(field, f"must be at most {maximum.days} days")
    value = dt.timedelta(seconds=seconds, microseconds=nanos // 1000)
    if value > maximum:
        raise InvalidArgument(field, f"must be at most {maximum.days} days")
    return value


def later(start: dt.datetime, delta: dt.timedelta, field: str) -> dt.datetime:
    """`start + delta`, or InvalidArgument naming `field` if that passes year 9999."""
    if start > MAX_DATETIME - delta:
        raise InvalidArgument(field, "puts the time past 9999-12-31")
    return start + delta


def json_text(value: str, field: str, limits: Limits) -> str:
    """`value` if it is JSON within the size and depth limits, else InvalidArgument."""
    # An ASCII text is its own length in bytes (isascii is a flag read, encode a copy).
    size = len(value) if value.isascii() else len(value.encode())
    if size > limits.max_payload_bytes:
        raise InvalidArgument(
            field, f"{size} bytes is over the limit of {limits.max_payload_bytes}"
        )
    if _too_deep(value, limits.max_json_depth):
        raise InvalidArgument(field, f"nested deeper than {limits.max_json_depth} levels")
    try:
        json.loads(value)
    except RecursionError:  # unbalanced brackets the skeleton could not pair
        raise InvalidArgument(field, "nested too deeply") from None
    except ValueError as exc:
        raise InvalidArgument(field, f"not valid JSON ({exc})") from None
    return value


def _too_deep(value: str, depth: int) -> bool:
    """Whether the brackets of a JSON text nest more than `depth` levels.

    Each pass removes the innermost pairs at C speed; the parser itself would recurse once
    per level and hit Python's recursion limit near 1,000 levels."""
    if value.count("[") + value.count("{") <= depth:
        return False  # not even that many brackets open, in strings or out
    skeleton = _NOT_BRACKET.sub("", _JSON_STRING.sub("", value))
    for _ in range(depth):
        inner = skeleton.replace("[]", "").replace("{}", "")
        if inner == skeleton:
            return False
        skeleton = inner
    return "[]" in skeleton or "{}" in skeleton


def error_text(value: str, limits: Limits) -> str:
    """A worker's failure text made storable: NULs escaped, at most max_error_bytes (UTF-8).

    A task author does not control an exception's message, so it is never refused: refusing it
    would lose the outcome."""
    value = value.replace("\x00", "\\u0000")
    data = value.encode()
    if len(data) <= limits.max_error_bytes:
        return value
    marker = TRUNCATED.format(len(data))
    keep = max(0, limits.max_error_bytes - len(marker.encode()))
    return data[:keep].decode(errors="ignore") + marker
