"""The schedule calendar port's adapters: cron expressions through cronsim, read in an IANA
time zone (zoneinfo), and fixed intervals from jobq.core.schedules.

cronsim follows Debian cron across DST changes: a fire time in the hour a spring-forward
skips runs once, right after the change; one in the hour a fall-back repeats runs once, at
its first occurrence.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import zoneinfo

from cronsim import CronSim, CronSimError

from jobq.core.errors import InvalidArgument
from jobq.core.schedules import Calendar, IntervalCalendar, Schedule, anchor_of

_MICRO = dt.timedelta(microseconds=1)
_ZONE_NAME = re.compile(r"[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*")
MIN_INTERVAL = dt.timedelta(seconds=1)


@dataclasses.dataclass(frozen=True, slots=True)
class CronCalendar:
    expression: str
    zone: zoneinfo.ZoneInfo

    def next_after(self, instant: dt.datetime) -> dt.datetime | None:
        try:
            fire = next(CronSim(self.expression, instant.astimezone(self.zone)))
        except StopIteration:
            return None
        return fire.astimezone(dt.UTC)

    def last_at_or_before(self, instant: dt.datetime) -> dt.datetime | None:
        # cronsim's reverse iteration yields a start with microseconds, floored, first.
        start = instant.replace(microsecond=0) + _MICRO
        try:
            fire = next(CronSim(self.expression, start.astimezone(self.zone), reverse=True))
        except StopIteration:
            return None
        return fire.astimezone(dt.UTC)


def zone(name: str, field: str = "schedule.time_zone") -> zoneinfo.ZoneInfo:
    name = name or "UTC"
    # zoneinfo reads the name as a path under the tz database: only tz-style names reach it.
    if not _ZONE_NAME.fullmatch(name) or ".." in name:
        raise InvalidArgument(field, f"{name[:64]!r} is not an IANA time zone name")
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidArgument(field, f"{name[:64]!r} is not an IANA time zone name") from None


def check_cron(expression: str, field: str = "schedule.cron") -> str:
    fields = expression.split()
    if len(fields) not in (5, 6):
        raise InvalidArgument(field, "must have 5 fields, or 6 with seconds first")
    try:
        CronSim(expression, dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    except CronSimError as exc:
        raise InvalidArgument(field, f"{expression[:64]!r}: {exc}") from None
    return expression


def calendar_for(schedule: Schedule) -> Calendar:
    if schedule.cron is not None:
        return CronCalendar(schedule.cron, zone(schedule.time_zone))
    assert schedule.interval is not None and schedule.created_at is not None
    return IntervalCalendar(anchor_of(schedule, schedule.created_at), schedule.interval)
