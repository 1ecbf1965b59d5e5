"""Bad input is refused with the field named; good input becomes absolute times."""

import datetime as dt

import pytest

from jobq.core.errors import InvalidArgument
from jobq.core.model import QueueConfig
from jobq.core.validation import JobSpec, Limits, validate_job, validate_queue

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
LIMITS = Limits(max_payload_bytes=100)


def validate(**fields):
    return validate_job(
        JobSpec(**({"type": "echo"} | fields)), now=T0, limits=LIMITS, new_id=lambda: "id-1"
    )


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"type": ""}, "type"),
        ({"type": "has space"}, "type"),
        ({"queue": "Upper"}, "queue"),
        ({"queue": "a" * 64}, "queue"),
        ({"queue": "-leading-dash"}, "queue"),
        ({"priority": 101}, "priority"),
        ({"priority": -101}, "priority"),
        ({"payload": "{not json"}, "payload"),
        ({"payload": '"' + "x" * 200 + '"'}, "payload"),
        ({"delay": dt.timedelta(seconds=-1)}, "delay"),
        ({"timeout": dt.timedelta(seconds=-1)}, "timeout"),
        ({"ttl": dt.timedelta(seconds=-5)}, "ttl"),
        ({"max_attempts": -1}, "max_attempts"),
        ({"max_attempts": 1001}, "max_attempts"),
        ({"delay": dt.timedelta(seconds=1), "run_at": T0}, "delay"),
        ({"idempotency_key": "k" * 201}, "idempotency_key"),
        ({"tenant": "Bad Tenant"}, "tenant"),
    ],
)
def test_bad_input_names_the_field(fields, field) -> None:
    with pytest.raises(InvalidArgument) as raised:
        validate(**fields)
    assert raised.value.field == field


def test_delay_and_ttl_become_absolute_times() -> None:
    job = validate(delay=dt.timedelta(minutes=10), ttl=dt.timedelta(hours=1))
    assert job.run_at == T0 + dt.timedelta(minutes=10)
    assert job.expires_at == T0 + dt.timedelta(minutes=10, hours=1)


def test_defaults_fill_queue_tenant_and_payload() -> None:
    job = validate()
    assert (job.queue, job.tenant, job.payload, job.max_attempts) == (
        "default",
        "default",
        "null",
        None,
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"weight": 0}, "queue.weight"),
        ({"max_attempts": 0}, "queue.max_attempts"),
        ({"lease_timeout": dt.timedelta(0)}, "queue.lease_timeout"),
        ({"backoff_max": dt.timedelta(milliseconds=1)}, "queue.backoff_max"),
        ({"concurrency_limit": -1}, "queue.concurrency_limit"),
        ({"name": "Bad"}, "queue.name"),
    ],
)
def test_bad_queue_settings_name_the_field(change, field) -> None:
    import dataclasses

    with pytest.raises(InvalidArgument) as raised:
        validate_queue(dataclasses.replace(QueueConfig(name="q"), **change))
    assert raised.value.field == field
