"""Schedules' pure rules with an injected clock: fire times across DST, catch-up, overlap,
jitter and the idempotency key."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from jobq.core.errors import InvalidArgument
from jobq.core.schedules import (
    Action,
    CatchUp,
    IntervalCalendar,
    Overlap,
    Schedule,
    ScheduledJob,
    decide,
    due_fires,
    first_fire,
    idempotency_key,
    jitter_for,
    plan_tick,
    upcoming,
)
from jobq.server.calendars import CronCalendar, check_cron, zone

UTC = dt.UTC
BERLIN = zone("Europe/Berlin")
NEW_YORK = zone("America/New_York")
T0 = dt.datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SECOND = dt.timedelta(seconds=1)


def fires_between(
    calendar: CronCalendar, start: dt.datetime, end: dt.datetime
) -> list[dt.datetime]:
    """Every fire time in (start, end], as a leader ticking through those days sees them."""
    times = []
    fire = calendar.next_after(start)
    while fire is not None and fire <= end:
        times.append(fire)
        fire = calendar.next_after(fire)
    return times


@pytest.mark.parametrize(
    ("tz", "spring_day"),
    [(BERLIN, dt.date(2026, 3, 29)), (NEW_YORK, dt.date(2026, 3, 8))],
)
def test_a_0230_schedule_runs_once_on_the_spring_forward_day(
    tz: object, spring_day: dt.date
) -> None:
    # Given 02:30 daily in a zone whose clocks jump 02:00 -> 03:00 that day
    calendar = CronCalendar("30 2 * * *", tz)  # type: ignore[arg-type]
    day_start = dt.datetime.combine(spring_day, dt.time(0), tzinfo=tz).astimezone(UTC)  # type: ignore[arg-type]
    # When the day's fire times are listed
    fires = fires_between(calendar, day_start, day_start + dt.timedelta(hours=23))
    # Then there is exactly one, just after the jump (03:00 local, the first real minute)
    assert len(fires) == 1
    assert fires[0].astimezone(tz).hour == 3  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("tz", "fall_day"),
    [(BERLIN, dt.date(2026, 10, 25)), (NEW_YORK, dt.date(2026, 11, 1))],
)
def test_a_0130_or_0230_schedule_runs_once_on_the_fall_back_day(
    tz: object, fall_day: dt.date
) -> None:
    hour = 2 if tz is BERLIN else 1  # the repeated hour in each zone
    calendar = CronCalendar(f"30 {hour} * * *", tz)  # type: ignore[arg-type]
    day_start = dt.datetime.combine(fall_day, dt.time(0), tzinfo=tz).astimezone(UTC)  # type: ignore[arg-type]
    fires = fires_between(calendar, day_start, day_start + dt.timedelta(hours=25))
    assert len(fires) == 1
    # and the day after, at the same wall-clock time, one hour later in UTC than before
    after = calendar.next_after(fires[0])
    assert after is not None and after - fires[0] == dt.timedelta(hours=25)


def test_a_schedule_read_in_its_zone_fires_at_local_wall_clock_time() -> None:
    calendar = CronCalendar("0 9 * * 1-5", NEW_YORK)
    fire = calendar.next_after(dt.datetime(2026, 12, 4, 15, tzinfo=UTC))  # a Friday, 10:00 NY
    assert fire == dt.datetime(2026, 12, 7, 14, tzinfo=UTC)  # Monday 09:00 EST


def test_six_fields_put_seconds_first() -> None:
    calendar = CronCalendar("*/15 * * * * *", zone("UTC"))
    assert calendar.next_after(T0) == T0 + 15 * SECOND
    assert calendar.last_at_or_before(T0 + 20 * SECOND) == T0 + 15 * SECOND
    assert calendar.last_at_or_before(T0 + 15 * SECOND) == T0 + 15 * SECOND


@pytest.mark.parametrize("expr", ["", "* * *", "61 * * * *", "* * * * * * *", "bogus * * * *"])
def test_a_bad_cron_expression_is_invalid_argument_naming_the_field(expr: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        check_cron(expr)
    assert refused.value.field == "schedule.cron"


@pytest.mark.parametrize("name", ["Mars/Olympus", "../../etc/passwd", "Europe/", "UTC\n"])
def test_an_unknown_time_zone_is_invalid_argument(name: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        zone(name)
    assert refused.value.field == "schedule.time_zone"


def test_an_interval_counts_from_its_anchor() -> None:
    calendar = IntervalCalendar(T0, 10 * SECOND)
    assert calendar.next_after(T0 - SECOND) == T0
    assert calendar.next_after(T0) == T0 + 10 * SECOND
    assert calendar.next_after(T0 + 15 * SECOND) == T0 + 20 * SECOND
    assert calendar.last_at_or_before(T0 + 19 * SECOND) == T0 + 10 * SECOND
    assert calendar.last_at_or_before(T0 - SECOND) is None


def test_the_first_fire_respects_start_and_end() -> None:
    calendar = IntervalCalendar(T0, 10 * SECOND)
    start = T0 + 35 * SECOND
    assert first_fire(calendar, T0, start, None) == T0 + 40 * SECOND
    assert first_fire(calendar, T0, None, T0 + 5 * SECOND) is None
    assert upcoming(calendar, T0, 3, T0 + 15 * SECOND) == [T0, T0 + 10 * SECOND]


EVERY_SECOND = IntervalCalendar(T0, SECOND)
WINDOW = dt.timedelta(seconds=30)


def test_every_fire_time_missed_within_the_window_runs_once() -> None:
    # Given a leader down for 10 s of a per-second schedule
    fires, following, missed = due_fires(
        EVERY_SECOND, T0, T0 + 10 * SECOND, WINDOW, CatchUp.EACH, None
    )
    assert fires == [T0 + i * SECOND for i in range(11)]
    assert following == T0 + 11 * SECOND and not missed


def test_fire_times_older_than_the_window_are_dropped_never_flooded() -> None:
    now = T0 + dt.timedelta(hours=1)
    fires, following, missed = due_fires(EVERY_SECOND, T0, now, WINDOW, CatchUp.EACH, None)
    assert missed
    assert fires[0] == now - WINDOW and fires[-1] == now and len(fires) == 31
    # and at most a cap per tick: the rest come next tick
    fires, following, _ = due_fires(EVERY_SECOND, T0, now, WINDOW, CatchUp.EACH, None, cap=5)
    assert len(fires) == 5 and following == now - WINDOW + 5 * SECOND


def test_latest_only_runs_the_latest_missed_fire_time() -> None:
    fires, following, missed = due_fires(
        EVERY_SECOND, T0, T0 + 10 * SECOND, WINDOW, CatchUp.LATEST, None
    )
    assert fires == [T0 + 10 * SECOND] and following == T0 + 11 * SECOND and missed


def test_nothing_is_due_before_the_next_fire_time_or_after_the_end() -> None:
    assert due_fires(EVERY_SECOND, T0 + SECOND, T0, WINDOW, CatchUp.EACH, None)[0] == []
    fires, following, _ = due_fires(
        EVERY_SECOND, T0, T0 + 10 * SECOND, WINDOW, CatchUp.EACH, T0 + 2 * SECOND
    )
    assert fires == [T0, T0 + SECOND, T0 + 2 * SECOND] and following is None


@pytest.mark.parametrize(
    ("overlap", "running", "buffer_taken", "action"),
    [
        (Overlap.SKIP, False, False, Action.SUBMIT),
        (Overlap.SKIP, True, False, Action.SKIP),
        (Overlap.ALLOW, True, False, Action.SUBMIT),
        (Overlap.BUFFER_ONE, True, False, Action.BUFFER),
        (Overlap.BUFFER_ONE, True, True, Action.SKIP),
        (Overlap.CANCEL_PREVIOUS, True, False, Action.CANCEL_AND_SUBMIT),
        (Overlap.CANCEL_PREVIOUS, False, False, Action.SUBMIT),
    ],
)
def test_the_overlap_table(
    overlap: Overlap, running: bool, buffer_taken: bool, action: Action
) -> None:
    assert decide(overlap, running, buffer_taken) is action


def schedule(**fields: object) -> Schedule:
    base = Schedule(
        id="0190f0f0-0000-7000-8000-000000000001",
        tenant="acme",
        name="nightly",
        job=ScheduledJob(type="echo", queue="default"),
        interval=SECOND,
        next_fire_at=T0,
        created_at=T0,
        catch_up_window=WINDOW,
    )
    return dataclasses.replace(base, **fields)  # type: ignore[arg-type]


def test_a_tick_of_skip_submits_the_first_catch_up_and_skips_the_rest() -> None:
    plan = plan_tick(schedule(), EVERY_SECOND, T0 + 2 * SECOND, previous_running=False)
    assert [s.action for s in plan.steps] == [Action.SUBMIT, Action.SKIP, Action.SKIP]


def test_a_tick_of_buffer_one_buffers_one_and_submits_it_once_the_previous_finished() -> None:
    plan = plan_tick(
        schedule(overlap=Overlap.BUFFER_ONE), EVERY_SECOND, T0 + SECOND, previous_running=True
    )
    assert [s.action for s in plan.steps] == [Action.BUFFER, Action.SKIP]
    assert plan.buffered_fire_at == T0
    later = schedule(overlap=Overlap.BUFFER_ONE, buffered_fire_at=T0, next_fire_at=T0 + 5 * SECOND)
    plan = plan_tick(later, EVERY_SECOND, T0 + 3 * SECOND, previous_running=False)
    assert plan.steps[0].fire_at == T0 and plan.steps[0].action is Action.SUBMIT
    assert plan.buffered_fire_at is None


def test_jitter_is_fixed_per_fire_time_and_within_bounds() -> None:
    jitter = dt.timedelta(seconds=30)
    delays = {jitter_for("s1", T0 + i * SECOND, jitter) for i in range(50)}
    assert all(dt.timedelta(0) <= d < jitter for d in delays) and len(delays) > 40
    assert jitter_for("s1", T0, jitter) == jitter_for("s1", T0, jitter)
    assert jitter_for("s1", T0, dt.timedelta(0)) == dt.timedelta(0)


def test_the_idempotency_key_names_tenant_schedule_and_fire_time() -> None:
    key = idempotency_key("acme", "sid", T0, manual=False)
    assert key == idempotency_key("acme", "sid", T0.astimezone(BERLIN), manual=False)
    assert key != idempotency_key("acme", "sid", T0 + SECOND, manual=False)
    assert key != idempotency_key("other", "sid", T0, manual=False)
    assert key != idempotency_key("acme", "sid", T0, manual=True)
    assert len(idempotency_key("t" * 63, "0" * 36, T0, manual=True)) <= 200
