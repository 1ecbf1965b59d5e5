"""The fast time conversions agree with protobuf's own helpers on every value they meet."""

from __future__ import annotations

import datetime as dt

from google.protobuf import duration_pb2, timestamp_pb2
from hypothesis import given
from hypothesis import strategies as st

from jobq.v1 import job_pb2
from jobq.wire.times import (
    from_duration,
    from_timestamp,
    set_timestamp,
    to_duration,
    to_timestamp,
)

AWARE = st.datetimes(
    min_value=dt.datetime(1, 1, 1, 0, 0, 1),
    max_value=dt.datetime(9999, 12, 31),
    timezones=st.just(dt.UTC),
)


@given(AWARE)
def test_timestamps_match_protobufs_helpers_both_ways(value: dt.datetime) -> None:
    expected = timestamp_pb2.Timestamp()
    expected.FromDatetime(value)
    assert to_timestamp(value) == expected
    assert from_timestamp(expected) == expected.ToDatetime(tzinfo=dt.UTC) == value


@given(st.one_of(AWARE, st.datetimes(min_value=dt.datetime(1, 1, 2))))
def test_a_timestamp_written_in_place_is_the_one_to_timestamp_builds(value: dt.datetime) -> None:
    job = job_pb2.Job()
    set_timestamp(job.run_at, value)
    assert job.HasField("run_at")
    assert job.run_at == to_timestamp(value)


@given(st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30)))
def test_a_naive_datetime_is_taken_as_utc(value: dt.datetime) -> None:
    assert from_timestamp(to_timestamp(value)) == value.replace(tzinfo=dt.UTC)


@given(
    st.integers(min_value=-(10**6), max_value=10**6),
    st.integers(min_value=0, max_value=999_999_999),
)
def test_nanoseconds_beyond_the_microsecond_are_dropped_like_protobuf(
    seconds: int, nanos: int
) -> None:
    message = timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)
    assert from_timestamp(message) == message.ToDatetime(tzinfo=dt.UTC)


@given(st.timedeltas(min_value=dt.timedelta(days=-(10**5)), max_value=dt.timedelta(days=10**5)))
def test_durations_match_protobufs_helpers_both_ways(value: dt.timedelta) -> None:
    expected = duration_pb2.Duration()
    expected.FromTimedelta(value)
    assert to_duration(value) == expected
    assert from_duration(expected) == expected.ToTimedelta() == value
