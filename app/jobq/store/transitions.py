"""The one way adapters record a state change: checked against the lifecycle table."""

from __future__ import annotations

import datetime as dt
from typing import Any

from jobq.core.model import HeldJob, Job, JobEvent
from jobq.core.states import EventKind, JobState, check_transition
from jobq.ids import new_id


def transition_event(
    *,
    job_id: str,
    queue: str,
    tenant: str,
    kind: EventKind,
    from_state: JobState | None,
    to_state: JobState | None,
    attempt: int,
    at: dt.datetime,
    **details: Any,
) -> JobEvent:
    """The job_events row for one transition; raises IllegalTransition if the table forbids it."""
    check_transition(from_state, to_state, kind)
    return JobEvent(
        id=new_id(),
        job_id=job_id,
        queue=queue,
        tenant=tenant,
        kind=kind,
        from_state=from_state,
        to_state=to_state,
        attempt=attempt,
        at=at,
        details={k: v for k, v in details.items() if v is not None},
    )


def job_event(
    job: Job | HeldJob,
    kind: EventKind,
    to_state: JobState | None,
    at: dt.datetime,
    *,
    from_state: JobState | None = None,
    **details: Any,
) -> JobEvent:
    """The event for a transition of `job` as read (its state, unless `from_state` is given),
    carrying its id, queue, tenant, attempt, correlation id and W3C trace context (so that a
    consumer of the event can join the job's trace)."""
    before = job.state if from_state is None else from_state
    return transition_event(
        job_id=job.id,
        queue=job.queue,
        tenant=job.tenant,
        kind=kind,
        from_state=before,
        to_state=to_state,
        attempt=job.attempt,
        at=at,
        correlation_id=job.correlation_id or None,
        trace_context=job.trace_context or None,
        workflow_id=job.workflow_id,  # None (dropped) for a job of no workflow
        **attempt_times(job, kind, before),
        **details,
    )


def attempt_times(job: Job | HeldJob, kind: EventKind, before: JobState | None) -> dict[str, str]:
    """What a consumer needs to time a job from its events alone (jq-metrics-aggregator):
    a start names when the job became due, the end of an attempt when that attempt began."""
    if kind is EventKind.STARTED:
        return {"due_at": job.run_at.isoformat()}
    if before is JobState.RUNNING and job.started_at is not None:
        return {"started_at": job.started_at.isoformat()}
    return {}
