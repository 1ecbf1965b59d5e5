"""The event-kind-to-topic table and the topics jobq creates."""

from __future__ import annotations

import datetime as dt

from jobq.core.model import JobEvent
from jobq.core.states import EventKind, JobState
from jobq.events import topics
from jobq.events.codec import decode, encode
from jobq.v1 import job_pb2


def test_every_event_kind_has_a_topic() -> None:
    assert set(topics.TOPIC_OF_KIND) == set(EventKind)


def test_the_issue_topics_exist_and_dead_letters_are_kept_30_days() -> None:
    specs = {spec.name: spec for spec in topics.all_topics()}
    for name in (
        "job.submitted",
        "job.started",
        "job.completed",
        "job.failed",
        "job.dead-lettered",
        "job.cancelled",
        "worker.heartbeat",
    ):
        assert name in specs
    assert specs["job.dead-lettered"].config()["retention.ms"] == str(30 * 24 * 3600 * 1000)
    assert specs["job.completed"].config()["retention.ms"] == str(7 * 24 * 3600 * 1000)


def test_a_prefix_goes_in_front_of_every_topic() -> None:
    names = topics.TopicNames("staging.")
    assert names.for_kind(EventKind.SUCCEEDED) == "staging.job.completed"
    assert all(spec.name.startswith("staging.") for spec in names.specs())


def test_an_event_round_trips_through_the_wire_format() -> None:
    event = JobEvent(
        id="0190a0b0-0000-7000-8000-000000000001",
        job_id="0190a0b0-0000-7000-8000-0000000000aa",
        kind=EventKind.RETRY_SCHEDULED,
        from_state=JobState.RUNNING,
        to_state=JobState.SCHEDULED,
        attempt=2,
        at=dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC),
        details={"error": "boom", "correlation_id": "req-7"},
        queue="emails",
        seq=42,
    )
    message = decode(encode(event))
    assert message.event_id == event.id
    assert message.job_id == event.job_id
    assert message.kind == "retry_scheduled"
    assert message.from_state == job_pb2.JOB_STATE_RUNNING
    assert message.to_state == job_pb2.JOB_STATE_SCHEDULED
    assert message.sequence == 42
    assert message.correlation_id == "req-7"
    assert message.details["error"] == "boom"
    assert message.at.ToDatetime(dt.UTC) == event.at
