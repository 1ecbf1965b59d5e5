"""What happens after a failed attempt, as a pure function of the job and the time."""

import dataclasses
import datetime as dt

import pytest

from jobq.core.lifecycle import decide_failure
from jobq.core.model import Job, QueueConfig
from jobq.core.states import EventKind, JobState

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
QUEUE = QueueConfig(name="q", backoff_base=dt.timedelta(seconds=2))
JOB = Job(
    id="j",
    queue="q",
    type="t",
    payload="null",
    state=JobState.RUNNING,
    priority=0,
    attempt=1,
    attempt_base=0,
    max_attempts=3,
    run_at=T0,
    created_at=T0,
    updated_at=T0,
)


class Half:
    def random(self) -> float:
        return 0.5


@pytest.mark.parametrize(
    ("attempt", "base", "retryable", "expected"),
    [
        (1, 0, True, JobState.SCHEDULED),
        (2, 0, True, JobState.SCHEDULED),
        (3, 0, True, JobState.DEAD),  # the last attempt
        (1, 0, False, JobState.DEAD),  # not retryable
        (3, 1, True, JobState.SCHEDULED),  # one attempt was released: it does not count
    ],
)
def test_retry_or_dead_letter(attempt, base, retryable, expected) -> None:
    job = dataclasses.replace(JOB, attempt=attempt, attempt_base=base)
    decision = decide_failure(job, QUEUE, T0, retryable=retryable, rng=Half())
    assert decision.to_state is expected


def test_retry_is_due_after_the_jittered_backoff() -> None:
    job = dataclasses.replace(JOB, attempt=2)
    decision = decide_failure(job, QUEUE, T0, retryable=True, rng=Half())
    assert decision.run_at == T0 + dt.timedelta(seconds=2)  # ceiling 4s, half of it
    assert decision.kind is EventKind.RETRY_SCHEDULED


def test_lease_expiry_is_recorded_as_such() -> None:
    decision = decide_failure(JOB, QUEUE, T0, retryable=True, lease_expired=True, rng=Half())
    assert decision.kind is EventKind.LEASE_EXPIRED
