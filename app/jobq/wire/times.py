"""Times and durations to and from their protobuf messages, without the well-known types'
pure-Python helpers (`FromDatetime`, `ToDatetime`): about twice as fast, and every job on
the hot path carries several."""

from __future__ import annotations

import datetime as dt

from google.protobuf import duration_pb2, timestamp_pb2

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_SECOND = dt.timedelta(seconds=1)


def to_timestamp(value: dt.datetime) -> timestamp_pb2.Timestamp:
    """A naive datetime is taken as UTC, as `Timestamp.FromDatetime` does."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    delta = value - EPOCH
    # timedelta keeps days, seconds and microseconds normalised (0 <= seconds < 86400 and
    # 0 <= microseconds < 10**6), so nanos is never negative, as Timestamp requires.
    return timestamp_pb2.Timestamp(
        seconds=delta.days * 86400 + delta.seconds, nanos=delta.microseconds * 1000
    )


def set_timestamp(field: timestamp_pb2.Timestamp, value: dt.datetime) -> None:
    """Write `value` into a message's Timestamp field in place, as to_timestamp builds it:
    no Timestamp is made only to be copied into its parent (a third of job_to_pb's time)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    delta = value - EPOCH
    field.seconds = delta.days * 86400 + delta.seconds
    field.nanos = delta.microseconds * 1000


def from_timestamp(value: timestamp_pb2.Timestamp) -> dt.datetime:
    """Aware, in UTC; nanoseconds beyond the microsecond are dropped, as `ToDatetime` does."""
    return EPOCH + dt.timedelta(seconds=value.seconds, microseconds=value.nanos // 1000)


def to_duration(value: dt.timedelta) -> duration_pb2.Duration:
    # A negative timedelta is normalised with negative days; Duration wants seconds and
    # nanos of the same sign, so build it from the total microseconds.
    micros = (value.days * 86400 + value.seconds) * 10**6 + value.microseconds
    seconds, rest = divmod(abs(micros), 10**6)
    sign = -1 if micros < 0 else 1
    return duration_pb2.Duration(seconds=sign * seconds, nanos=sign * rest * 1000)


def from_duration(value: duration_pb2.Duration) -> dt.timedelta:
    return dt.timedelta(seconds=value.seconds, microseconds=value.nanos // 1000)
