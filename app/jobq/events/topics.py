"""Which topic each job event goes to, and the topics jobq creates.

Each event goes to exactly one topic, keyed by job id, so one job's events stay in order
within a topic. Across topics Kafka orders nothing: `JobEvent.sequence` (the outbox order)
puts one job's events back in order for a consumer of several topics.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from jobq.core.states import EventKind

SUBMITTED = "job.submitted"
QUEUED = "job.queued"
STARTED = "job.started"
COMPLETED = "job.completed"
FAILED = "job.failed"
DEAD_LETTERED = "job.dead-lettered"
CANCELLED = "job.cancelled"
EXPIRED = "job.expired"
SCHEDULE_FIRED = "schedule.fired"
WORKER_HEARTBEAT = "worker.heartbeat"

E = EventKind

# The one table from event kind to topic. The dead-letter topic carries the dead letter's
# whole story (dead-lettered, then replayed or discarded), kept 30 days.
TOPIC_OF_KIND: dict[EventKind, str] = {
    E.SUBMITTED: SUBMITTED,
    E.PROMOTED: QUEUED,  # scheduled -> queued: run_at reached
    E.RELEASED: QUEUED,  # running -> queued: a draining worker gave it back
    E.READY: QUEUED,  # waiting -> queued: a workflow node's last parent succeeded
    E.STARTED: STARTED,
    E.SUCCEEDED: COMPLETED,
    E.RETRY_SCHEDULED: FAILED,  # an attempt failed, another is scheduled
    E.LEASE_EXPIRED: FAILED,  # an attempt's worker went silent, another is scheduled
    E.DEAD_LETTERED: DEAD_LETTERED,
    E.REPLAYED: DEAD_LETTERED,
    E.DISCARDED: DEAD_LETTERED,
    E.CANCEL_REQUESTED: CANCELLED,
    E.CANCELLED: CANCELLED,
    E.EXPIRED: EXPIRED,
    E.SCHEDULE_FIRED: SCHEDULE_FIRED,  # keyed by the fired job's id, like every event
}

DEFAULT_RETENTION = dt.timedelta(days=7)
DEAD_LETTER_RETENTION = dt.timedelta(days=30)


@dataclasses.dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    retention: dt.timedelta

    def config(self) -> dict[str, str]:
        return {
            "retention.ms": str(int(self.retention.total_seconds() * 1000)),
            "cleanup.policy": "delete",
        }


def all_topics() -> list[TopicSpec]:
    names = sorted({*TOPIC_OF_KIND.values(), WORKER_HEARTBEAT})
    return [
        TopicSpec(n, DEAD_LETTER_RETENTION if n == DEAD_LETTERED else DEFAULT_RETENTION)
        for n in names
    ]


class TopicNames:
    """Topic names as deployed: the table's names behind an optional prefix ("staging.")."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix

    def for_kind(self, kind: EventKind) -> str:
        return self.prefix + TOPIC_OF_KIND[kind]

    def name(self, base: str) -> str:
        return self.prefix + base

    def specs(self) -> list[TopicSpec]:
        return [TopicSpec(self.prefix + t.name, t.retention) for t in all_topics()]
