"""A job_events row as the protobuf `jobq.v1.JobEvent` published to Kafka, and back."""

from __future__ import annotations

from google.protobuf import json_format

from jobq.core.model import JobEvent
from jobq.core.states import JobState
from jobq.v1 import events_pb2, job_pb2
from jobq.wire.states import STATE_TO_PB
from jobq.wire.times import to_timestamp

EVENT_ID_HEADER = "jq-event-id"


def _state(state: JobState | None) -> job_pb2.JobState.ValueType:
    if state is None:
        return job_pb2.JOB_STATE_UNSPECIFIED
    return STATE_TO_PB[state]


def to_message(event: JobEvent) -> events_pb2.JobEvent:
    message = events_pb2.JobEvent(
        event_id=event.id,
        job_id=event.job_id,
        queue=event.queue,
        tenant=event.tenant,
        kind=event.kind.value,
        from_state=_state(event.from_state),
        to_state=_state(event.to_state),
        attempt=event.attempt,
        sequence=event.seq,
        correlation_id=str(event.details.get("correlation_id", "")),
    )
    message.at.CopyFrom(to_timestamp(event.at))
    # The trace context has a field of its own; the details keep the kind-specific rest.
    details = {k: v for k, v in event.details.items() if k != "trace_context"}
    json_format.ParseDict(details, message.details)
    trace = event.details.get("trace_context")
    if isinstance(trace, dict):
        message.trace_context.update({str(k): str(v) for k, v in trace.items()})
    return message


def encode(event: JobEvent) -> bytes:
    return to_message(event).SerializeToString()


def decode(value: bytes) -> events_pb2.JobEvent:
    message = events_pb2.JobEvent()
    message.ParseFromString(value)
    return message
