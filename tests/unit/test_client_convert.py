"""submit_many's results built straight from the request and the lean reply are the jobs
that merging the two messages describes (ADR 0025's definition), field for field."""

from __future__ import annotations

import dataclasses
import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from jobq.client import _convert as cv
from jobq.v1 import job_pb2
from jobq.wire import convert as wire
from jobq.wire.times import set_timestamp

TIMES = st.datetimes(
    min_value=dt.datetime(1971, 1, 1),
    max_value=dt.datetime(2200, 1, 1),
    timezones=st.just(dt.UTC),
)
TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=8)


def merged(sent: job_pb2.Job, reply: job_pb2.Job) -> job_pb2.Job:
    whole = job_pb2.Job()
    whole.CopyFrom(sent)
    whole.ClearField("timeout")
    whole.MergeFrom(reply)
    return whole


def through_core(job: job_pb2.Job) -> cv.Job:
    """The SDK's job as it was built before ADR 0023: the core Job, then the SDK's."""
    core = wire.job_from_pb(job)
    fields = {f.name: getattr(core, f.name) for f in dataclasses.fields(core)}
    return cv.Job(**fields | {"payload": cv.decode(job.payload), "result": cv.decode(job.result)})


@st.composite
def requests(draw: st.DrawFn) -> job_pb2.Job:
    return cv.job_request(
        draw(st.sampled_from(["echo", "a.b"])),
        draw(st.one_of(st.none(), st.integers(), TEXT, st.lists(st.integers(), max_size=3))),
        queue=draw(st.sampled_from(["", "q1"])),
        priority=draw(st.integers(-5, 5)),
        max_attempts=draw(st.integers(0, 4)),
        timeout=draw(st.sampled_from([None, "5m"])),
        run_at=draw(st.none() | TIMES),
        idempotency_key=draw(st.sampled_from(["", "k"])),
        tenant=draw(st.sampled_from(["", "t1"])),
        rate_key=draw(st.sampled_from(["", "r"])),
        concurrency_key=draw(st.sampled_from(["", "c"])),
    )


@st.composite
def replies(draw: st.DrawFn) -> job_pb2.Job:
    """What a lean reply may carry, or a whole job from a server that predates `lean`."""
    reply = job_pb2.Job(
        id=draw(st.uuids()).hex,
        state=draw(st.sampled_from([job_pb2.JOB_STATE_QUEUED, job_pb2.JOB_STATE_SCHEDULED])),
        queue=draw(st.sampled_from(["default", "q1"])),
        tenant=draw(st.sampled_from(["default", "t1"])),
        max_attempts=draw(st.integers(1, 4)),
        correlation_id=draw(st.sampled_from(["", "corr"])),
        payload=draw(st.sampled_from(["", "null", '{"a": 1}'])),
        type=draw(st.sampled_from(["", "echo"])),
        priority=draw(st.integers(-1, 1)),
        idempotency_key=draw(st.sampled_from(["", "k"])),
    )
    if draw(st.booleans()):
        reply.trace_context["traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b71692-01"
    now = draw(TIMES)
    for field in ("created_at", "updated_at"):
        set_timestamp(getattr(reply, field), now)
    set_timestamp(reply.run_at, draw(st.sampled_from([now, now + dt.timedelta(seconds=90)])))
    if draw(st.booleans()):
        set_timestamp(reply.expires_at, now + dt.timedelta(hours=1))
    if draw(st.booleans()):
        reply.timeout.seconds = 300
    return reply


@st.composite
def submits(draw: st.DrawFn) -> tuple[job_pb2.Job, job_pb2.Job]:
    sent, reply = draw(requests()), draw(replies())
    if sent.HasField("run_at"):  # the server keeps a given run_at as sent
        reply.run_at.CopyFrom(sent.run_at)
    return sent, reply


@given(st.lists(submits(), min_size=1, max_size=4))
def test_a_submitted_job_is_the_request_merged_with_its_reply(
    batch: list[tuple[job_pb2.Job, job_pb2.Job]],
) -> None:
    # Given a batch's requests and replies, converted with one shared time cache
    times = cv.Times()
    for sent, reply in batch:
        # Then each job is what the merged message converts to
        expected = through_core(merged(sent, reply))
        assert cv.submitted_from_pb(sent, reply, times) == expected
        assert cv.job_from_pb(merged(sent, reply), times) == expected


@given(st.lists(TIMES, min_size=1, max_size=6))
def test_the_time_cache_converts_every_timestamp_it_is_given(values: list[dt.datetime]) -> None:
    times = cv.Times()
    for value in values:
        message = job_pb2.Job()
        set_timestamp(message.run_at, value)
        assert times(message.run_at) == value
