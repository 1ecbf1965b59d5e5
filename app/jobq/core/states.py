"""The job lifecycle as data: the states, every legal transition, and the terminal set."""

from __future__ import annotations

import enum

from jobq.core.errors import IllegalTransition


class JobState(enum.StrEnum):
    WAITING = "waiting"  # a workflow node whose parents have not all succeeded (ADR 0016)
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    DEAD = "dead"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class EventKind(enum.StrEnum):
    """Why a transition happened; the `kind` of each job_events row."""

    SUBMITTED = "submitted"
    PROMOTED = "promoted"
    STARTED = "started"
    SUCCEEDED = "succeeded"
    RETRY_SCHEDULED = "retry_scheduled"
    LEASE_EXPIRED = "lease_expired"
    DEAD_LETTERED = "dead_lettered"
    CANCEL_REQUESTED = "cancel_requested"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    RELEASED = "released"
    REPLAYED = "replayed"
    DISCARDED = "discarded"
    # A workflow node's last parent succeeded: it may run (ADR 0016).
    READY = "ready"
    # Not a transition: a schedule submitted this job for one of its fire times (ADR 0014).
    SCHEDULE_FIRED = "schedule_fired"


S = JobState
E = EventKind

# (from, to) -> the event kinds that may carry the job along that edge. `None` as the
# source is the job's creation, `None` as the target its deletion (a discarded dead letter).
TRANSITIONS: dict[tuple[JobState | None, JobState | None], frozenset[EventKind]] = {
    (None, S.SCHEDULED): frozenset({E.SUBMITTED}),
    (None, S.QUEUED): frozenset({E.SUBMITTED}),
    (None, S.WAITING): frozenset({E.SUBMITTED}),
    (S.WAITING, S.QUEUED): frozenset({E.READY}),
    (S.WAITING, S.SCHEDULED): frozenset({E.READY}),  # its own run_at is still ahead
    (S.WAITING, S.CANCELLED): frozenset({E.CANCELLED}),
    (S.SCHEDULED, S.QUEUED): frozenset({E.PROMOTED}),
    (S.QUEUED, S.RUNNING): frozenset({E.STARTED}),
    (S.RUNNING, S.SUCCEEDED): frozenset({E.SUCCEEDED}),
    (S.RUNNING, S.SCHEDULED): frozenset({E.RETRY_SCHEDULED, E.LEASE_EXPIRED}),
    (S.RUNNING, S.DEAD): frozenset({E.DEAD_LETTERED}),
    (S.RUNNING, S.RUNNING): frozenset({E.CANCEL_REQUESTED}),
    (S.RUNNING, S.QUEUED): frozenset({E.RELEASED}),
    (S.RUNNING, S.CANCELLED): frozenset({E.CANCELLED}),
    (S.SCHEDULED, S.CANCELLED): frozenset({E.CANCELLED}),
    (S.QUEUED, S.CANCELLED): frozenset({E.CANCELLED}),
    (S.SCHEDULED, S.EXPIRED): frozenset({E.EXPIRED}),
    (S.QUEUED, S.EXPIRED): frozenset({E.EXPIRED}),
    (S.DEAD, S.QUEUED): frozenset({E.REPLAYED}),
    (S.DEAD, None): frozenset({E.DISCARDED}),
}

TERMINAL_STATES: frozenset[JobState] = frozenset({S.SUCCEEDED, S.DEAD, S.CANCELLED, S.EXPIRED})
# Due or soon due: what expiry, a queue purge and a plain cancel act on. WAITING is not
# among them: a waiting job leaves only by its parents' outcomes or its workflow's cancel.
PENDING_STATES: frozenset[JobState] = frozenset({S.SCHEDULED, S.QUEUED})


def check_transition(
    from_state: JobState | None, to_state: JobState | None, kind: EventKind
) -> None:
    """Raise IllegalTransition unless the table allows `kind` to move a job along this edge."""
    if kind not in TRANSITIONS.get((from_state, to_state), frozenset()):
        raise IllegalTransition(
            f"a job cannot go from {from_state or 'nothing'} to {to_state or 'nothing'} "
            f"by {kind.value}"
        )
