"""jobq.core.bounds: each rule as a plain table of cases."""

from __future__ import annotations

import datetime as dt

import pytest

from jobq.core import bounds
from jobq.core.errors import InvalidArgument
from jobq.core.model import LeaseRef, Outcome, OutcomeKind, QueueConfig
from jobq.core.validation import JobSpec, validate_job, validate_outcome, validate_queue
from jobq.ids import new_id
from tests.conftest import T0

LIMITS = bounds.Limits(max_payload_bytes=1000, max_batch=10, max_json_depth=8, max_error_bytes=300)
UUID = "0190c6a1-7a3b-7cde-8f00-0123456789ab"

TEXT_CASES = [
    # value, maximum, accepted
    ("", 5, True),
    ("abcde", 5, True),
    ("abcdef", 5, False),
    ("a\x00b", 5, False),
    ("\x00", 5, False),
    ("é" * 5, 5, True),
    ("x" * 30_000_000, 128, False),
]


@pytest.mark.parametrize(("value", "maximum", "accepted"), TEXT_CASES)
def test_text_is_refused_with_a_nul_or_over_its_bound(value, maximum, accepted) -> None:
    if accepted:
        assert bounds.text(value, "f", maximum) == value
    else:
        with pytest.raises(InvalidArgument) as raised:
            bounds.text(value, "f", maximum)
        assert raised.value.field == "f"


def test_every_field_bound_is_a_number_or_its_own_rule() -> None:
    assert bounds.field_text("x" * 128, "worker_id", "worker_id")
    with pytest.raises(InvalidArgument, match="worker_id"):
        bounds.field_text("x" * 129, "worker_id", "worker_id")
    # The worker's error text is never refused here: it is sanitised instead.
    assert bounds.field_text("\x00" * 10, "error", "error") == "\x00" * 10


ITEMS_CASES = [("queues", 256), ("task_types", 1024), ("jobs", 10), ("leases", 10), ("ids", 10)]


@pytest.mark.parametrize(("name", "maximum"), ITEMS_CASES)
def test_lists_are_bounded(name, maximum) -> None:
    assert LIMITS.items_max(name) == maximum
    bounds.items(maximum, name, LIMITS.items_max(name))
    with pytest.raises(InvalidArgument, match=name):
        bounds.items(maximum + 1, name, LIMITS.items_max(name))


TRACE_CASES = [
    ({"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"}, True),
    ({f"k{i}": "v" for i in range(33)}, False),
    ({"k" * 257: "v"}, False),
    ({"k": "v" * 8193}, False),
    ({f"k{i}": "v" * 8000 for i in range(3)}, False),  # each fits, the total does not
    ({"k": "a\x00"}, False),
    ({"a\x00": "v"}, False),
]


@pytest.mark.parametrize(("entries", "accepted"), TRACE_CASES)
def test_trace_context_is_bounded(entries, accepted) -> None:
    if accepted:
        assert bounds.trace_context(entries, "trace_context") == entries
    else:
        with pytest.raises(InvalidArgument, match=r"^trace_context"):
            bounds.trace_context(entries, "trace_context")


ID_CASES = [
    (UUID, True),
    (UUID.upper(), False),
    (f"urn:uuid:{UUID}", False),
    ("{" + UUID + "}", False),
    (UUID.replace("-", ""), False),
    (UUID + "\n", False),
    ("", False),
    ("nope", False),
]


@pytest.mark.parametrize(("value", "accepted"), ID_CASES)
def test_only_canonical_ids_and_page_tokens(value, accepted) -> None:
    assert bounds.is_job_id(value) is accepted
    if accepted or not value:
        assert bounds.page_token(value) == value
    else:
        with pytest.raises(InvalidArgument, match=r"^page_token"):
            bounds.page_token(value)


TIMESTAMP_CASES = [
    (0, 0, dt.datetime(1970, 1, 1, tzinfo=dt.UTC)),
    (bounds.MIN_TIMESTAMP_SECONDS, 0, dt.datetime(1, 1, 1, tzinfo=dt.UTC)),
    (bounds.MAX_TIMESTAMP_SECONDS, 999_999_999, bounds.MAX_DATETIME),
    (bounds.MIN_TIMESTAMP_SECONDS - 1, 0, None),
    (bounds.MAX_TIMESTAMP_SECONDS + 1, 0, None),
    (2**63 - 1, 0, None),
    (-(2**63), 0, None),
    (0, -1, None),
    (0, 1_000_000_000, None),
]


@pytest.mark.parametrize(("seconds", "nanos", "expected"), TIMESTAMP_CASES)
def test_timestamps_outside_years_1_to_9999_or_bad_nanos_are_refused(
    seconds, nanos, expected
) -> None:
    if expected is not None:
        assert bounds.timestamp(seconds, nanos, "run_at") == expected
    else:
        with pytest.raises(InvalidArgument, match=r"^run_at"):
            bounds.timestamp(seconds, nanos, "run_at")


DURATION_CASES = [
    ("delay", 0, 0, dt.timedelta(0)),
    ("delay", 365 * 86400, 0, dt.timedelta(days=365)),
    ("delay", 365 * 86400, 1000, None),
    ("delay", 2**63 - 1, 0, None),  # timedelta itself would overflow
    ("delay", -1, 0, None),
    ("delay", 0, -5, None),
    ("delay", 1, 1_000_000_000, None),
    ("lease_timeout", 86400, 0, dt.timedelta(days=1)),
    ("lease_timeout", 86401, 0, None),
    ("retention", 315_576_000_000, 0, None),
    ("retry_after", 10, 500_000_000, dt.timedelta(seconds=10.5)),
]


@pytest.mark.parametrize(("name", "seconds", "nanos", "expected"), DURATION_CASES)
def test_durations_are_bounded_per_field(name, seconds, nanos, expected) -> None:
    field = f"outcomes[0].failed.{name}"
    if expected is not None:
        assert bounds.duration(seconds, nanos, field, name) == expected
    else:
        with pytest.raises(InvalidArgument) as raised:
            bounds.duration(seconds, nanos, field, name)
        assert raised.value.field == field


def test_a_time_past_year_9999_is_refused_naming_the_field() -> None:
    late = dt.datetime(9999, 12, 1, tzinfo=dt.UTC)
    assert bounds.later(late, dt.timedelta(days=1), "ttl") == dt.datetime(
        9999, 12, 2, tzinfo=dt.UTC
    )
    with pytest.raises(InvalidArgument, match=r"^ttl"):
        bounds.later(late, dt.timedelta(days=31), "ttl")


JSON_CASES = [
    ("null", True),
    ('{"a": [1, 2, {"b": "]]]]]]]]]]"}]}', True),  # brackets inside strings do not nest
    ("[" * 8 + "]" * 8, True),
    ("[" * 9 + "]" * 9, False),
    ('{"a":' * 9 + "1" + "}" * 9, False),
    ("[" * 2000 + "]" * 2000, False),  # the parser alone would hit the recursion limit
    ("[" * 5000, False),
    ('"a\\u0000b"', True),  # an escape, not a NUL: stored as text by both stores
    ('"a\x00b"', False),
    ("{not json", False),
    ('"' + "x" * 1000 + '"', False),
    ('"\\"[[[[[[[[[["', True),
]


@pytest.mark.parametrize(("value", "accepted"), JSON_CASES)
def test_json_is_bounded_in_size_and_depth(value, accepted) -> None:
    if accepted:
        assert bounds.json_text(value, "payload", LIMITS) == value
    else:
        with pytest.raises(InvalidArgument, match=r"^payload"):
            bounds.json_text(value, "payload", LIMITS)


ERROR_CASES = [
    ("boom", "boom"),
    ("a\x00b", "a\\u0000b"),
    ("x" * 300, "x" * 300),
]


@pytest.mark.parametrize(("value", "expected"), ERROR_CASES)
def test_error_text_is_sanitised_never_refused(value, expected) -> None:
    assert bounds.error_text(value, LIMITS) == expected


def test_long_error_text_is_cut_to_the_byte_limit_on_a_character_boundary() -> None:
    cut = bounds.error_text("é" * 1000, LIMITS)
    assert len(cut.encode()) <= LIMITS.max_error_bytes
    assert cut.endswith("[truncated from 2000 bytes]")
    assert cut.startswith("é" * 100)


def test_outcomes_result_json_is_checked_and_error_sanitised() -> None:
    lease = LeaseRef(UUID, 1)
    deep = Outcome(lease, OutcomeKind.COMPLETED, result="[" * 9 + "]" * 9)
    with pytest.raises(InvalidArgument) as raised:
        validate_outcome(deep, "outcomes[3]", LIMITS)
    assert raised.value.field == "outcomes[3].completed.result"
    failed = Outcome(lease, OutcomeKind.FAILED, error="a\x00" * 1000)
    assert "\x00" not in (validate_outcome(failed, "outcomes[0]", LIMITS).error or "")


SPEC_CASES = [
    ({"delay": dt.timedelta(days=366)}, "delay"),
    ({"ttl": dt.timedelta(days=3651)}, "ttl"),
    ({"timeout": dt.timedelta(days=31)}, "timeout"),
    ({"run_at": dt.datetime(9999, 12, 31, tzinfo=dt.UTC), "ttl": dt.timedelta(days=2)}, "ttl"),
    ({"correlation_id": "c" * 129}, "correlation_id"),
    ({"correlation_id": "c\x00"}, "correlation_id"),
    ({"trace_context": {"traceparent": "\x00"}}, "trace_context['traceparent']"),
    ({"idempotency_key": "k\x00"}, "idempotency_key"),
    ({"queue": "default\n"}, "queue"),
    ({"type": "echo\n"}, "type"),
]


@pytest.mark.parametrize(("fields", "field"), SPEC_CASES)
def test_job_specs_out_of_bounds_are_refused_naming_the_field(fields, field) -> None:
    with pytest.raises(InvalidArgument) as raised:
        validate_job(JobSpec(**({"type": "echo"} | fields)), now=T0, limits=LIMITS, new_id=new_id)
    assert raised.value.field == field


QUEUE_CASES = [
    ("lease_timeout", dt.timedelta(days=2)),
    ("backoff_max", dt.timedelta(days=400)),
    ("retention", dt.timedelta(days=4000)),
    ("default_ttl", dt.timedelta(days=4000)),
]


@pytest.mark.parametrize(("name", "value"), QUEUE_CASES)
def test_queue_durations_have_maxima(name, value) -> None:
    queue = QueueConfig(name="q", **{name: value})
    with pytest.raises(InvalidArgument) as raised:
        validate_queue(queue)
    assert raised.value.field == f"queue.{name}"
