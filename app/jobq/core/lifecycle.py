"""Decisions about a job's next state, as pure functions of the job and the time."""

from __future__ import annotations

import dataclasses
import datetime as dt

from jobq.core.model import HeldJob, Job, QueueConfig
from jobq.core.retry import Random, backoff_delay
from jobq.core.states import EventKind, JobState


@dataclasses.dataclass(frozen=True, slots=True)
class FailureDecision:
    to_state: JobState
    kind: EventKind
    run_at: dt.datetime | None  # when the retry becomes due; None when dead


def decide_failure(
    job: Job | HeldJob,
    queue: QueueConfig,
    now: dt.datetime,
    *,
    retryable: bool,
    lease_expired: bool = False,
    retry_after: dt.timedelta | None = None,
    rng: Random | None = None,
) -> FailureDecision:
    """A failed or abandoned attempt: retry with backoff while attempts remain, else dead-letter."""
    if not retryable or job.attempts_used >= job.max_attempts:
        return FailureDecision(JobState.DEAD, EventKind.DEAD_LETTERED, None)
    delay = retry_after
    if delay is None:
        delay = backoff_delay(job.attempts_used, queue.backoff_base, queue.backoff_max, rng)
    kind = EventKind.LEASE_EXPIRED if lease_expired else EventKind.RETRY_SCHEDULED
    return FailureDecision(JobState.SCHEDULED, kind, now + delay)


def initial_state(run_at: dt.datetime, now: dt.datetime) -> JobState:
    return JobState.QUEUED if run_at <= now else JobState.SCHEDULED
