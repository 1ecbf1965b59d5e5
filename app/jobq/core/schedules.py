"""Schedules: which fire times are due, what the overlap policy does with each, and the
idempotency key that makes a fire time submit at most one job.

Pure: the calendar (a cron expression or a fixed interval) is a port, `Calendar`, so this
module is tested with plain tables of instants; the cron adapter lives outside core/.
Every instant here is an aware UTC datetime.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import hashlib
from typing import Protocol

DEFAULT_CATCH_UP_WINDOW = dt.timedelta(minutes=5)
# At most this many fire times are handled per schedule per tick: a long outage of a
# per-second schedule catches up over several ticks, never as one flood.
MAX_FIRES_PER_TICK = 100
UPCOMING = 5  # next fire times GetSchedule shows
RECENT_RUNS = 20  # runs GetSchedule shows
RUNS_KEPT = 200  # runs kept per schedule; older ones are deleted as new ones are recorded
_MICRO = dt.timedelta(microseconds=1)


class Overlap(enum.StrEnum):
    SKIP = "skip"
    ALLOW = "allow"
    BUFFER_ONE = "buffer_one"
    CANCEL_PREVIOUS = "cancel_previous"


class CatchUp(enum.StrEnum):
    EACH = "each"
    LATEST = "latest"


class RunOutcome(enum.StrEnum):
    SUBMITTED = "submitted"
    SKIPPED = "skipped"
    BUFFERED = "buffered"
    FAILED = "failed"


class Action(enum.Enum):
    SUBMIT = "submit"
    SKIP = "skip"
    BUFFER = "buffer"
    CANCEL_AND_SUBMIT = "cancel_and_submit"


class Calendar(Protocol):
    def next_after(self, instant: dt.datetime) -> dt.datetime | None:
        """The first fire time strictly after `instant`, None if there is none."""
        ...

    def last_at_or_before(self, instant: dt.datetime) -> dt.datetime | None:
        """The latest fire time at or before `instant`, None if there is none."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class IntervalCalendar:
    """Every `every` from `anchor` on: anchor, anchor + every, ..."""

    anchor: dt.datetime
    every: dt.timedelta

    def next_after(self, instant: dt.datetime) -> dt.datetime | None:
        if instant < self.anchor:
            return self.anchor
        steps = (instant - self.anchor) // self.every + 1
        return self.anchor + steps * self.every

    def last_at_or_before(self, instant: dt.datetime) -> dt.datetime | None:
        if instant < self.anchor:
            return None
        return self.anchor + ((instant - self.anchor) // self.every) * self.every


@dataclasses.dataclass(frozen=True, slots=True)
class ScheduledJob:
    type: str
    queue: str
    payload: str = "null"
    priority: int = 0
    max_attempts: int = 0  # 0: the queue's


@dataclasses.dataclass(frozen=True, slots=True)
class Schedule:
    id: str
    tenant: str
    name: str
    job: ScheduledJob
    cron: str | None = None
    interval: dt.timedelta | None = None
    time_zone: str = "UTC"
    overlap: Overlap = Overlap.SKIP
    catch_up: CatchUp = CatchUp.EACH
    catch_up_window: dt.timedelta = DEFAULT_CATCH_UP_WINDOW
    jitter: dt.timedelta = dt.timedelta(0)
    start_at: dt.datetime | None = None
    end_at: dt.datetime | None = None
    paused: bool = False
    # The leader's bookkeeping: the first fire time not yet handled, a fire time waiting
    # for the previous run (buffer_one), and the job of the latest run.
    next_fire_at: dt.datetime | None = None
    buffered_fire_at: dt.datetime | None = None
    last_job_id: str | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class ScheduleRun:
    fire_at: dt.datetime
    outcome: RunOutcome
    job_id: str | None
    recorded_at: dt.datetime
    manual: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Advance:
    """A compare-and-set of a schedule's bookkeeping: applied only if the row still holds
    the `expected_*` values, so two replicas that both think they lead record a fire time
    once (and the loser's job, same idempotency key, is the winner's)."""

    expected_next: dt.datetime | None
    expected_buffered: dt.datetime | None
    next_fire_at: dt.datetime | None
    buffered_fire_at: dt.datetime | None
    last_job_id: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class Step:
    fire_at: dt.datetime
    action: Action


@dataclasses.dataclass(frozen=True, slots=True)
class TickPlan:
    steps: tuple[Step, ...]
    next_fire_at: dt.datetime | None
    buffered_fire_at: dt.datetime | None
    missed: bool  # fire times older than the catch-up window were dropped


def anchor_of(schedule: Schedule, created: dt.datetime) -> dt.datetime:
    """Where an interval schedule counts from: its start time, else its creation."""
    return schedule.start_at or created


def first_fire(
    calendar: Calendar, after: dt.datetime, start_at: dt.datetime | None, end_at: dt.datetime | None
) -> dt.datetime | None:
    """The first fire time strictly after `after`, not before `start_at`, not after `end_at`."""
    if start_at is not None and start_at > after:
        fire = calendar.next_after(start_at - _MICRO)
    else:
        fire = calendar.next_after(after)
    return _within(fire, end_at)


def upcoming(
    calendar: Calendar, first: dt.datetime | None, count: int, end_at: dt.datetime | None
) -> list[dt.datetime]:
    times: list[dt.datetime] = []
    fire = first
    while fire is not None and len(times) < count:
        times.append(fire)
        fire = _within(calendar.next_after(fire), end_at)
    return times


def due_fires(
    calendar: Calendar,
    next_fire_at: dt.datetime | None,
    now: dt.datetime,
    window: dt.timedelta,
    catch_up: CatchUp,
    end_at: dt.datetime | None,
    cap: int = MAX_FIRES_PER_TICK,
) -> tuple[list[dt.datetime], dt.datetime | None, bool]:
    """The fire times to handle now, the next one after them, and whether any were missed.

    Fire times in (now - window, now] are due, at most `cap` of them (the rest next tick),
    or only the latest of them under CatchUp.LATEST; older ones are dropped as missed.
    """
    if next_fire_at is None or next_fire_at > now:
        return [], next_fire_at, False
    horizon = now - window
    missed = False
    fire: dt.datetime | None = next_fire_at
    if next_fire_at < horizon:
        missed = True
        fire = calendar.next_after(horizon - _MICRO)
    if catch_up is CatchUp.LATEST:
        latest = calendar.last_at_or_before(now)
        if latest is not None and fire is not None and latest > fire:
            missed = True
            fire = latest
    fires: list[dt.datetime] = []
    while fire is not None and fire <= now and len(fires) < cap:
        if end_at is not None and fire > end_at:
            fire = None
            break
        fires.append(fire)
        fire = calendar.next_after(fire)
    return fires, _within(fire, end_at), missed


def decide(overlap: Overlap, previous_running: bool, buffer_taken: bool) -> Action:
    """What a fire time does, given whether the schedule's previous run is unfinished."""
    if not previous_running or overlap is Overlap.ALLOW:
        return Action.SUBMIT
    if overlap is Overlap.CANCEL_PREVIOUS:
        return Action.CANCEL_AND_SUBMIT
    if overlap is Overlap.BUFFER_ONE and not buffer_taken:
        return Action.BUFFER
    return Action.SKIP


def plan_tick(
    schedule: Schedule,
    calendar: Calendar,
    now: dt.datetime,
    previous_running: bool,
    cap: int = MAX_FIRES_PER_TICK,
) -> TickPlan:
    """Everything one tick does for one schedule, in fire-time order.

    A buffered fire time goes first once the previous run has finished. Each submitted run
    is unfinished for the fire times after it in the same tick.
    """
    steps: list[Step] = []
    running = previous_running
    buffered = schedule.buffered_fire_at
    if buffered is not None and not running:
        steps.append(Step(buffered, Action.SUBMIT))
        running, buffered = True, None
    fires, following, missed = due_fires(
        calendar,
        schedule.next_fire_at,
        now,
        schedule.catch_up_window,
        schedule.catch_up,
        schedule.end_at,
        cap,
    )
    for fire in fires:
        action = decide(schedule.overlap, running, buffered is not None)
        if action is Action.BUFFER:
            buffered = fire
        elif action is not Action.SKIP:
            running = True
        steps.append(Step(fire, action))
    return TickPlan(tuple(steps), following, buffered, missed)


def jitter_for(schedule_id: str, fire_at: dt.datetime, jitter: dt.timedelta) -> dt.timedelta:
    """A delay in [0, jitter) fixed by (schedule, fire time): a fire time submitted again
    (by a new leader) asks for the same start, and runs of many schedules spread out."""
    if jitter <= dt.timedelta(0):
        return dt.timedelta(0)
    digest = hashlib.sha256(f"{schedule_id}|{fire_at.isoformat()}".encode()).digest()
    return (int.from_bytes(digest[:8], "big") % (jitter // _MICRO)) * _MICRO


def idempotency_key(tenant: str, schedule_id: str, fire_at: dt.datetime, manual: bool) -> str:
    """The job key of one fire time: the same on every replica and after any crash."""
    kind = "trigger" if manual else "fire"
    stamp = fire_at.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    return f"schedule:{tenant}:{schedule_id}:{kind}:{stamp}"


def fired_details(schedule_id: str, name: str, run: ScheduleRun) -> dict[str, object]:
    """The `schedule.fired` event's details, the same from both stores."""
    return {
        "schedule_id": schedule_id,
        "schedule": name,
        "fire_time": run.fire_at.isoformat(),
        "manual": run.manual,
    }


def _within(fire: dt.datetime | None, end_at: dt.datetime | None) -> dt.datetime | None:
    if fire is None or (end_at is not None and fire > end_at):
        return None
    return fire


__all__ = [
    "DEFAULT_CATCH_UP_WINDOW",
    "Action",
    "Advance",
    "Calendar",
    "CatchUp",
    "IntervalCalendar",
    "Overlap",
    "RunOutcome",
    "Schedule",
    "ScheduleRun",
    "ScheduledJob",
    "Step",
    "TickPlan",
    "anchor_of",
    "decide",
    "due_fires",
    "fired_details",
    "first_fire",
    "idempotency_key",
    "jitter_for",
    "plan_tick",
    "upcoming",
]
