"""Schedules: what ScheduleService's RPCs call, and the leader's firing of due schedules.

Tenancy as everywhere (ADR 0009): a schedule is named by (tenant, name); the tenant a
request acts in comes from jobq.server.caller. Firing is the leader's maintenance, across
tenants, each job submitted in its schedule's tenant.

Exactly one job per fire time (ADR 0014): each run's job carries an idempotency key from
(tenant, schedule id, fire time), so a fire time submitted again - by a new leader after a
crash between "submitted" and "recorded", or by two replicas that both think they lead - is
the job already there; the bookkeeping moves on only by a compare-and-set, which records
each fire time, and appends its `schedule.fired` event, once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Any

from jobq.core.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    StoreUnavailable,
)
from jobq.core.model import Job
from jobq.core.schedules import (
    DEFAULT_CATCH_UP_WINDOW,
    RECENT_RUNS,
    UPCOMING,
    Action,
    Advance,
    CatchUp,
    Overlap,
    RunOutcome,
    Schedule,
    ScheduledJob,
    ScheduleRun,
    first_fire,
    idempotency_key,
    jitter_for,
    plan_tick,
    upcoming,
)
from jobq.core.states import TERMINAL_STATES, JobState
from jobq.core.validation import JobSpec, validate_job, validate_queue_name
from jobq.ids import new_id
from jobq.server.calendars import MIN_INTERVAL, calendar_for, check_cron, zone
from jobq.server.caller import caller, filter_scope, named_tenant
from jobq.server.service import JobqService, limits_from

log = logging.getLogger("jobq.schedules")

DUE_BATCH = 100  # schedules fired per tick; more wait for the next
MIN_CATCH_UP_WINDOW = dt.timedelta(seconds=1)  # a tick sees a fire time up to a tick late
TRIGGER_TRIES = 5
# Fields whose change moves the calendar: the next fire time is worked out afresh.
CALENDAR_FIELDS = frozenset({"cron", "interval", "time_zone", "start_at", "end_at"})


@dataclasses.dataclass(frozen=True, slots=True)
class ScheduleView:
    schedule: Schedule
    next_fire_times: list[dt.datetime]
    recent_runs: list[ScheduleRun]


class ScheduleService:
    def __init__(self, service: JobqService) -> None:
        self._service = service
        self._store = service.store
        self._clock = service.clock
        self._limits = limits_from(service.settings)

    # --- the RPCs -------------------------------------------------------------------

    async def create(self, schedule: Schedule) -> Schedule:
        tenant = named_tenant(caller(), schedule.tenant, "schedule.tenant")
        now = self._clock.now()
        schedule = dataclasses.replace(
            schedule, id=new_id(), tenant=tenant, created_at=now, updated_at=now
        )
        self._validate(schedule)
        await self._queue_exists(schedule)
        schedule = dataclasses.replace(
            schedule,
            next_fire_at=first_fire(
                calendar_for(schedule), now, schedule.start_at, schedule.end_at
            ),
        )
        return await self._store.schedules.create(schedule)

    async def update(self, name: str, tenant: str, changes: dict[str, Any]) -> Schedule:
        existing = await self._get(name, tenant)
        job_parts = {k.partition(".")[2]: changes.pop(k) for k in list(changes) if "." in k}
        if job_parts:
            base = changes.get("job", existing.job)
            changes["job"] = dataclasses.replace(base, **job_parts)
        if "job" in changes:
            job = changes["job"]
            changes["job"] = dataclasses.replace(
                job, queue=job.queue or "default", payload=job.payload or "null"
            )
        if "catch_up_window" in changes and changes["catch_up_window"] is None:
            changes["catch_up_window"] = DEFAULT_CATCH_UP_WINDOW
        if "time_zone" in changes:
            changes["time_zone"] = changes["time_zone"] or "UTC"
        if "cron" in changes:
            changes["cron"] = changes["cron"] or None
        # A schedule has one calendar: setting one clears the other.
        if changes.get("cron") is not None:
            changes["interval"] = None
        elif changes.get("interval") is not None:
            changes["cron"] = None
        updated = dataclasses.replace(existing, **changes)
        self._validate(updated)
        if "job" in changes:
            await self._queue_exists(updated)
        now = self._clock.now()
        # Unpausing through Update is a resume: what the pause skipped is not caught up.
        resumed = existing.paused and changes.get("paused") is False
        if resumed:
            changes["buffered_fire_at"] = None
        if resumed or CALENDAR_FIELDS & changes.keys():
            changes["next_fire_at"] = first_fire(
                calendar_for(updated), now, updated.start_at, updated.end_at
            )
        return await self._store.schedules.update(
            existing.name, changes, now, tenant=existing.tenant
        )

    async def get(self, name: str, tenant: str) -> ScheduleView:
        schedule = await self._get(name, tenant)
        times = (
            []
            if schedule.paused
            else upcoming(calendar_for(schedule), schedule.next_fire_at, UPCOMING, schedule.end_at)
        )
        runs = await self._store.schedules.runs(schedule.id, RECENT_RUNS)
        return ScheduleView(schedule, times, runs)

    async def list(self, tenant: str) -> list[Schedule]:
        return await self._store.schedules.all(tenant=filter_scope(caller(), tenant, "tenant"))

    async def pause(self, name: str, tenant: str) -> Schedule:
        schedule = await self._get(name, tenant)
        return await self._store.schedules.update(
            schedule.name, {"paused": True}, self._clock.now(), tenant=schedule.tenant
        )

    async def resume(self, name: str, tenant: str) -> Schedule:
        """What the pause skipped is not caught up: the next fire time is after now."""
        schedule = await self._get(name, tenant)
        if not schedule.paused:
            return schedule
        now = self._clock.now()
        changes = {
            "paused": False,
            "buffered_fire_at": None,
            "next_fire_at": first_fire(
                calendar_for(schedule), now, schedule.start_at, schedule.end_at
            ),
        }
        return await self._store.schedules.update(
            schedule.name, changes, now, tenant=schedule.tenant
        )

    async def delete(self, name: str, tenant: str) -> None:
        schedule = await self._get(name, tenant)
        await self._store.schedules.delete(schedule.name, tenant=schedule.tenant)

    async def trigger(self, name: str, tenant: str) -> ScheduleRun:
        """One run now, outside the calendar and the overlap policy."""
        schedule = await self._get(name, tenant)
        now = self._clock.now()
        job = await self._submit(schedule, now, now, manual=True)
        run = ScheduleRun(now, RunOutcome.SUBMITTED, job.id, now, manual=True)
        for _ in range(TRIGGER_TRIES):
            advance = Advance(
                expected_next=schedule.next_fire_at,
                expected_buffered=schedule.buffered_fire_at,
                next_fire_at=schedule.next_fire_at,
                buffered_fire_at=schedule.buffered_fire_at,
                last_job_id=job.id,
            )
            if await self._store.schedules.record(schedule.id, [run], advance, now):
                return run
            # The leader moved the bookkeeping on meanwhile: read it again and retry.
            schedule = await self._get(schedule.name, schedule.tenant)
        raise StoreUnavailable("the schedule kept changing; its job is submitted, try again")

    # --- the leader's firing ------------------------------------------------------------

    async def fire_due(self) -> int:
        """Handle every due schedule once; the number of jobs submitted."""
        now = self._clock.now()
        submitted = 0
        for schedule in await self._store.schedules.due(now, DUE_BATCH):
            try:
                submitted += await self._fire(schedule, now)
            except StoreUnavailable:
                raise
            except Exception:
                # One broken schedule (a time zone gone from the tz database) stops no other.
                log.exception("schedule %s/%s could not fire", schedule.tenant, schedule.name)
        return submitted

    async def _fire(self, schedule: Schedule, now: dt.datetime) -> int:
        plan = plan_tick(schedule, calendar_for(schedule), now, await self._running(schedule))
        if not plan.steps and plan.next_fire_at == schedule.next_fire_at:
            return 0  # a buffered fire time still waits for the previous run
        if plan.missed:
            log.info(
                "schedule %s/%s: fire times older than its catch-up window (%s) not run",
                schedule.tenant,
                schedule.name,
                schedule.catch_up_window,
            )
        runs: list[ScheduleRun] = []
        last_job_id = schedule.last_job_id
        for step in plan.steps:
            if step.action is Action.SKIP or step.action is Action.BUFFER:
                outcome = RunOutcome.SKIPPED if step.action is Action.SKIP else RunOutcome.BUFFERED
                runs.append(ScheduleRun(step.fire_at, outcome, None, now))
                continue
            if step.action is Action.CANCEL_AND_SUBMIT and last_job_id is not None:
                await self._cancel(schedule, last_job_id, now)
            try:
                job = await self._submit(schedule, step.fire_at, now, manual=False)
            except (InvalidArgument, NotFound, FailedPrecondition) as exc:
                log.warning("schedule %s/%s: cannot submit: %s", *_named(schedule), exc)
                runs.append(ScheduleRun(step.fire_at, RunOutcome.FAILED, None, now))
                continue
            runs.append(ScheduleRun(step.fire_at, RunOutcome.SUBMITTED, job.id, now))
            last_job_id = job.id
        advance = Advance(
            expected_next=schedule.next_fire_at,
            expected_buffered=schedule.buffered_fire_at,
            next_fire_at=plan.next_fire_at,
            buffered_fire_at=plan.buffered_fire_at,
            last_job_id=last_job_id,
        )
        if not await self._store.schedules.record(schedule.id, runs, advance, now):
            return 0  # another replica recorded these fire times; its jobs are these jobs
        return sum(1 for r in runs if r.outcome is RunOutcome.SUBMITTED)

    async def _running(self, schedule: Schedule) -> bool:
        if schedule.last_job_id is None:
            return False
        job = await self._store.jobs.get(schedule.last_job_id, tenant=schedule.tenant)
        return job is not None and job.state not in TERMINAL_STATES

    async def _cancel(self, schedule: Schedule, job_id: str, now: dt.datetime) -> None:
        try:
            job = await self._store.jobs.cancel(
                job_id, now, f"schedule {schedule.name}: cancel_previous", tenant=schedule.tenant
            )
        except (NotFound, FailedPrecondition):
            return  # finished meanwhile, or deleted by retention
        if job.state is JobState.CANCELLED:
            self._service.metrics.job_transition(job.queue, "cancelled")
        self._service.notifier.jobs_changed([job_id])

    async def _submit(
        self, schedule: Schedule, fire_at: dt.datetime, now: dt.datetime, *, manual: bool
    ) -> Job:
        spec = JobSpec(
            type=schedule.job.type,
            payload=schedule.job.payload,
            queue=schedule.job.queue,
            priority=schedule.job.priority,
            max_attempts=schedule.job.max_attempts,
            run_at=fire_at + jitter_for(schedule.id, fire_at, schedule.jitter),
            idempotency_key=idempotency_key(schedule.tenant, schedule.id, fire_at, manual),
            tenant=schedule.tenant,
        )
        new = validate_job(spec, now=now, limits=self._limits, new_id=new_id)
        [result] = await self._store.jobs.submit([new], now)
        if result.created:
            self._service.metrics.job_transition(result.job.queue, "submitted")
            if result.job.state is JobState.QUEUED:
                self._service.notifier.work_available()
        return result.job

    # --- helpers --------------------------------------------------------------------------

    async def _get(self, name: str, tenant: str) -> Schedule:
        if not name:
            raise InvalidArgument("name", "must not be empty")
        owner = named_tenant(caller(), tenant, "tenant")
        schedule = await self._store.schedules.get(name, tenant=owner)
        if schedule is None:
            raise NotFound(f"schedule {name!r} not found")
        return schedule

    async def _queue_exists(self, schedule: Schedule) -> None:
        if self._service.settings.auto_create_queues:
            return
        if await self._store.queues.get(schedule.job.queue, tenant=schedule.tenant) is None:
            raise NotFound(f"queue {schedule.job.queue!r} not found (JQ_AUTO_CREATE_QUEUES is off)")

    def _validate(self, schedule: Schedule) -> None:
        """Raise InvalidArgument naming the field, or return: the schedule can be stored."""
        validate_queue_name(schedule.name, "schedule.name")
        if (schedule.cron is None) == (schedule.interval is None):
            raise InvalidArgument("schedule.cron", "give a cron expression or an interval")
        if schedule.cron is not None:
            check_cron(schedule.cron)
        zone(schedule.time_zone)
        if schedule.interval is not None and schedule.interval < MIN_INTERVAL:
            raise InvalidArgument("schedule.interval", "must be at least 1 second")
        if schedule.catch_up_window < MIN_CATCH_UP_WINDOW:
            raise InvalidArgument("schedule.catch_up_window", "must be at least 1 second")
        if schedule.jitter < dt.timedelta(0):
            raise InvalidArgument("schedule.jitter", "must not be negative")
        if (
            schedule.start_at is not None
            and schedule.end_at is not None
            and schedule.end_at <= schedule.start_at
        ):
            raise InvalidArgument("schedule.end_time", "must be after start_time")
        try:
            validate_job(
                JobSpec(
                    type=schedule.job.type,
                    payload=schedule.job.payload,
                    queue=schedule.job.queue,
                    priority=schedule.job.priority,
                    max_attempts=schedule.job.max_attempts,
                    tenant=schedule.tenant,
                ),
                now=schedule.created_at or self._clock.now(),
                limits=self._limits,
                new_id=new_id,
            )
        except InvalidArgument as exc:
            raise InvalidArgument(f"schedule.job.{exc.field}", exc.problem) from None


def _named(schedule: Schedule) -> tuple[str, str]:
    return schedule.tenant, schedule.name


def new_schedule(
    *,
    name: str,
    tenant: str,
    job: ScheduledJob,
    cron: str | None = None,
    interval: dt.timedelta | None = None,
    time_zone: str = "UTC",
    overlap: Overlap = Overlap.SKIP,
    catch_up: CatchUp = CatchUp.EACH,
    catch_up_window: dt.timedelta | None = None,
    jitter: dt.timedelta = dt.timedelta(0),
    start_at: dt.datetime | None = None,
    end_at: dt.datetime | None = None,
    paused: bool = False,
) -> Schedule:
    """A schedule as a client asks for it; ScheduleService.create gives it its id."""
    return Schedule(
        id="",
        tenant=tenant,
        name=name,
        job=ScheduledJob(
            type=job.type,
            queue=job.queue or "default",
            payload=job.payload or "null",
            priority=job.priority,
            max_attempts=job.max_attempts,
        ),
        cron=cron or None,
        interval=interval,
        time_zone=time_zone or "UTC",
        overlap=overlap,
        catch_up=catch_up,
        catch_up_window=DEFAULT_CATCH_UP_WINDOW if catch_up_window is None else catch_up_window,
        jitter=jitter,
        start_at=start_at,
        end_at=end_at,
        paused=paused,
    )


__all__ = ["ScheduleService", "ScheduleView", "new_schedule"]
