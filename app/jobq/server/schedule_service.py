"""jobq.v1.ScheduleService: decode, call ScheduleService, encode."""

from __future__ import annotations

import datetime as dt
from typing import Any

from jobq.core.errors import InvalidArgument
from jobq.core.schedules import CatchUp, Overlap, RunOutcome, Schedule, ScheduledJob, ScheduleRun
from jobq.server import convert
from jobq.server.rpc_context import Context
from jobq.server.schedules import ScheduleService, ScheduleView, new_schedule
from jobq.v1 import schedule_service_pb2 as pb
from jobq.v1 import schedule_service_pb2_grpc
from jobq.wire.times import to_timestamp

OVERLAP_OF_PB = {
    pb.OVERLAP_POLICY_UNSPECIFIED: Overlap.SKIP,
    pb.OVERLAP_POLICY_SKIP: Overlap.SKIP,
    pb.OVERLAP_POLICY_ALLOW: Overlap.ALLOW,
    pb.OVERLAP_POLICY_BUFFER_ONE: Overlap.BUFFER_ONE,
    pb.OVERLAP_POLICY_CANCEL_PREVIOUS: Overlap.CANCEL_PREVIOUS,
}
PB_OF_OVERLAP = {v: k for k, v in OVERLAP_OF_PB.items() if k != pb.OVERLAP_POLICY_UNSPECIFIED}
CATCH_UP_OF_PB = {
    pb.CATCH_UP_POLICY_UNSPECIFIED: CatchUp.EACH,
    pb.CATCH_UP_POLICY_EACH: CatchUp.EACH,
    pb.CATCH_UP_POLICY_LATEST: CatchUp.LATEST,
}
PB_OF_CATCH_UP = {v: k for k, v in CATCH_UP_OF_PB.items() if k != pb.CATCH_UP_POLICY_UNSPECIFIED}
PB_OF_OUTCOME = {
    RunOutcome.SUBMITTED: pb.SCHEDULE_RUN_OUTCOME_SUBMITTED,
    RunOutcome.SKIPPED: pb.SCHEDULE_RUN_OUTCOME_SKIPPED,
    RunOutcome.BUFFERED: pb.SCHEDULE_RUN_OUTCOME_BUFFERED,
    RunOutcome.FAILED: pb.SCHEDULE_RUN_OUTCOME_FAILED,
}
# UpdateSchedule's mask paths -> Schedule fields.
UPDATABLE = {
    "cron": "cron",
    "interval": "interval",
    "time_zone": "time_zone",
    "job": "job",
    "job.type": "job.type",
    "job.queue": "job.queue",
    "job.payload": "job.payload",
    "job.priority": "job.priority",
    "job.max_attempts": "job.max_attempts",
    "overlap": "overlap",
    "catch_up": "catch_up",
    "catch_up_window": "catch_up_window",
    "jitter": "jitter",
    "start_time": "start_at",
    "end_time": "end_at",
    "paused": "paused",
}


def _overlap(value: int) -> Overlap:
    if value not in OVERLAP_OF_PB:
        raise InvalidArgument("schedule.overlap", f"{value} is not an overlap policy")
    return OVERLAP_OF_PB[value]  # type: ignore[index]


def _catch_up(value: int) -> CatchUp:
    if value not in CATCH_UP_OF_PB:
        raise InvalidArgument("schedule.catch_up", f"{value} is not a catch-up policy")
    return CATCH_UP_OF_PB[value]  # type: ignore[index]


def _job(job: pb.ScheduledJob) -> ScheduledJob:
    return ScheduledJob(
        type=job.type,
        queue=job.queue,
        payload=job.payload,
        priority=job.priority,
        max_attempts=job.max_attempts,
    )


def _opt_dur(message: pb.Schedule, name: str) -> dt.timedelta | None:
    if not message.HasField(name):  # type: ignore[arg-type]
        return None
    return convert.from_dur(getattr(message, name), f"schedule.{name}")


def _opt_ts(message: pb.Schedule, name: str) -> dt.datetime | None:
    if not message.HasField(name):  # type: ignore[arg-type]
        return None
    return convert.from_ts(getattr(message, name), f"schedule.{name}")


def _field_from_pb(message: pb.Schedule, path: str) -> Any:
    if path in ("cron", "time_zone", "paused"):
        return getattr(message, path)
    if path in ("interval", "catch_up_window", "jitter"):
        value = _opt_dur(message, path)
        return dt.timedelta(0) if value is None and path == "jitter" else value
    if path in ("start_time", "end_time"):
        return _opt_ts(message, path)
    if path == "overlap":
        return _overlap(message.overlap)
    if path == "catch_up":
        return _catch_up(message.catch_up)
    if path == "job":
        return _job(message.job)
    return getattr(message.job, path.partition(".")[2])


def schedule_from_pb(message: pb.Schedule) -> Schedule:
    return new_schedule(
        name=message.name,
        tenant=message.tenant,
        job=_job(message.job),
        cron=message.cron or None,
        interval=_opt_dur(message, "interval"),
        time_zone=message.time_zone,
        overlap=_overlap(message.overlap),
        catch_up=_catch_up(message.catch_up),
        catch_up_window=_opt_dur(message, "catch_up_window"),
        jitter=_opt_dur(message, "jitter") or dt.timedelta(0),
        start_at=_opt_ts(message, "start_time"),
        end_at=_opt_ts(message, "end_time"),
        paused=message.paused,
    )


def run_to_pb(run: ScheduleRun) -> pb.ScheduleRun:
    return pb.ScheduleRun(
        fire_time=convert.ts(run.fire_at),
        outcome=PB_OF_OUTCOME[run.outcome],
        job_id=run.job_id or "",
        record_time=convert.ts(run.recorded_at),
        manual=run.manual,
    )


def schedule_to_pb(schedule: Schedule, view: ScheduleView | None = None) -> pb.Schedule:
    message = pb.Schedule(
        id=schedule.id,
        name=schedule.name,
        tenant=schedule.tenant,
        cron=schedule.cron or "",
        interval=convert.dur(schedule.interval),
        time_zone=schedule.time_zone,
        job=pb.ScheduledJob(
            type=schedule.job.type,
            queue=schedule.job.queue,
            payload=schedule.job.payload,
            priority=schedule.job.priority,
            max_attempts=schedule.job.max_attempts,
        ),
        overlap=PB_OF_OVERLAP[schedule.overlap],
        catch_up=PB_OF_CATCH_UP[schedule.catch_up],
        catch_up_window=convert.dur(schedule.catch_up_window),
        jitter=convert.dur(schedule.jitter),
        start_time=convert.ts(schedule.start_at),
        end_time=convert.ts(schedule.end_at),
        paused=schedule.paused,
        next_fire_time=None if schedule.paused else convert.ts(schedule.next_fire_at),
        create_time=convert.ts(schedule.created_at),
        update_time=convert.ts(schedule.updated_at),
    )
    if view is not None:
        message.next_fire_times.extend(to_timestamp(fire) for fire in view.next_fire_times)
        message.recent_runs.extend(run_to_pb(r) for r in view.recent_runs)
    return message


class ScheduleServicer(schedule_service_pb2_grpc.ScheduleServiceServicer):
    def __init__(self, schedules: ScheduleService) -> None:
        self._schedules = schedules

    async def CreateSchedule(
        self, request: pb.CreateScheduleRequest, context: Context
    ) -> pb.Schedule:
        return schedule_to_pb(await self._schedules.create(schedule_from_pb(request.schedule)))

    async def UpdateSchedule(
        self, request: pb.UpdateScheduleRequest, context: Context
    ) -> pb.Schedule:
        paths = list(request.update_mask.paths)
        if not paths:
            raise InvalidArgument("update_mask", "name the fields to change")
        changes: dict[str, Any] = {}
        for path in paths:
            if path not in UPDATABLE:
                raise InvalidArgument("update_mask", f"{path[:64]!r} cannot be changed")
            changes[UPDATABLE[path]] = _field_from_pb(request.schedule, path)
        schedule = await self._schedules.update(
            request.schedule.name, request.schedule.tenant, changes
        )
        return schedule_to_pb(schedule)

    async def GetSchedule(self, request: pb.GetScheduleRequest, context: Context) -> pb.Schedule:
        view = await self._schedules.get(request.name, request.tenant)
        return schedule_to_pb(view.schedule, view)

    async def ListSchedules(
        self, request: pb.ListSchedulesRequest, context: Context
    ) -> pb.ListSchedulesResponse:
        schedules = await self._schedules.list(request.tenant)
        return pb.ListSchedulesResponse(schedules=[schedule_to_pb(s) for s in schedules])

    async def PauseSchedule(
        self, request: pb.PauseScheduleRequest, context: Context
    ) -> pb.Schedule:
        return schedule_to_pb(await self._schedules.pause(request.name, request.tenant))

    async def ResumeSchedule(
        self, request: pb.ResumeScheduleRequest, context: Context
    ) -> pb.Schedule:
        return schedule_to_pb(await self._schedules.resume(request.name, request.tenant))

    async def DeleteSchedule(
        self, request: pb.DeleteScheduleRequest, context: Context
    ) -> pb.DeleteScheduleResponse:
        await self._schedules.delete(request.name, request.tenant)
        return pb.DeleteScheduleResponse()

    async def TriggerSchedule(
        self, request: pb.TriggerScheduleRequest, context: Context
    ) -> pb.TriggerScheduleResponse:
        run = await self._schedules.trigger(request.name, request.tenant)
        return pb.TriggerScheduleResponse(run=run_to_pb(run))
