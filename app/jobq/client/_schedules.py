"""The SDK's schedule calls (`client.schedules.create(...)`), over jobq.v1.ScheduleService."""

from __future__ import annotations

import builtins
import dataclasses
import datetime as dt
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import field_mask_pb2

from jobq.client import _convert as cv
from jobq.core.durations import parse_duration
from jobq.core.schedules import CatchUp, Overlap, RunOutcome, Schedule, ScheduledJob, ScheduleRun
from jobq.v1 import schedule_service_pb2 as pb
from jobq.v1 import schedule_service_pb2_grpc
from jobq.wire.times import from_timestamp, to_duration, to_timestamp

T = TypeVar("T")
Call = Callable[[Callable[..., Awaitable[Any]], Any], Awaitable[Any]]

OVERLAP = {
    Overlap.SKIP: pb.OVERLAP_POLICY_SKIP,
    Overlap.ALLOW: pb.OVERLAP_POLICY_ALLOW,
    Overlap.BUFFER_ONE: pb.OVERLAP_POLICY_BUFFER_ONE,
    Overlap.CANCEL_PREVIOUS: pb.OVERLAP_POLICY_CANCEL_PREVIOUS,
}
CATCH_UP = {CatchUp.EACH: pb.CATCH_UP_POLICY_EACH, CatchUp.LATEST: pb.CATCH_UP_POLICY_LATEST}
OUTCOME = {
    pb.SCHEDULE_RUN_OUTCOME_SUBMITTED: RunOutcome.SUBMITTED,
    pb.SCHEDULE_RUN_OUTCOME_SKIPPED: RunOutcome.SKIPPED,
    pb.SCHEDULE_RUN_OUTCOME_BUFFERED: RunOutcome.BUFFERED,
    pb.SCHEDULE_RUN_OUTCOME_FAILED: RunOutcome.FAILED,
}
# Keyword -> the Schedule message field (and mask path) it sets.
OPTION_FIELDS = {
    "cron": "cron",
    "interval": "interval",
    "time_zone": "time_zone",
    "overlap": "overlap",
    "catch_up": "catch_up",
    "catch_up_window": "catch_up_window",
    "jitter": "jitter",
    "start_at": "start_time",
    "end_at": "end_time",
    "paused": "paused",
}
JOB_FIELDS = {"type", "queue", "payload", "priority", "max_attempts"}


@dataclasses.dataclass(frozen=True, slots=True)
class ScheduleDetails:
    schedule: Schedule
    next_fire_times: list[dt.datetime]
    recent_runs: list[ScheduleRun]


def _message(name: str, tenant: str, options: dict[str, Any]) -> tuple[pb.Schedule, list[str]]:
    message = pb.Schedule(name=name, tenant=tenant)
    paths: list[str] = []
    for key, value in options.items():
        if key in JOB_FIELDS:
            if key == "payload" and not isinstance(value, str):
                value = json.dumps(value)
            setattr(message.job, key, value)
            paths.append(f"job.{key}")
            continue
        field = OPTION_FIELDS.get(key)
        if field is None:
            raise TypeError(f"unknown schedule option {key!r}")
        paths.append(field)
        if value is None:
            continue  # cleared: the field stays unset
        if field in ("interval", "catch_up_window", "jitter"):
            getattr(message, field).CopyFrom(to_duration(parse_duration(value)))
        elif field in ("start_time", "end_time"):
            getattr(message, field).CopyFrom(to_timestamp(value))
        elif field == "overlap":
            message.overlap = OVERLAP[Overlap(value)]
        elif field == "catch_up":
            message.catch_up = CATCH_UP[CatchUp(value)]
        else:
            setattr(message, field, value)
    return message, paths


def _dur(message: Any, field: str) -> dt.timedelta | None:
    if not message.HasField(field):
        return None
    value = getattr(message, field)
    return dt.timedelta(seconds=value.seconds, microseconds=value.nanos // 1000)


def schedule_from_pb(m: pb.Schedule) -> Schedule:
    return Schedule(
        id=m.id,
        tenant=m.tenant,
        name=m.name,
        job=ScheduledJob(
            type=m.job.type,
            queue=m.job.queue,
            payload=m.job.payload,
            priority=m.job.priority,
            max_attempts=m.job.max_attempts,
        ),
        cron=m.cron or None,
        interval=_dur(m, "interval"),
        time_zone=m.time_zone,
        overlap={v: k for k, v in OVERLAP.items()}.get(m.overlap, Overlap.SKIP),
        catch_up={v: k for k, v in CATCH_UP.items()}.get(m.catch_up, CatchUp.EACH),
        catch_up_window=_dur(m, "catch_up_window") or dt.timedelta(0),
        jitter=_dur(m, "jitter") or dt.timedelta(0),
        start_at=cv.opt_dt(m, "start_time"),
        end_at=cv.opt_dt(m, "end_time"),
        paused=m.paused,
        next_fire_at=cv.opt_dt(m, "next_fire_time"),
        created_at=cv.opt_dt(m, "create_time"),
        updated_at=cv.opt_dt(m, "update_time"),
    )


def run_from_pb(m: pb.ScheduleRun) -> ScheduleRun:
    return ScheduleRun(
        fire_at=from_timestamp(m.fire_time),
        outcome=OUTCOME.get(m.outcome, RunOutcome.FAILED),
        job_id=m.job_id or None,
        recorded_at=from_timestamp(m.record_time),
        manual=m.manual,
    )


class AsyncSchedules:
    """`await client.schedules.create("nightly", cron="0 3 * * *", type="report.build")`."""

    def __init__(self, channel: grpc.aio.Channel, call: Call) -> None:
        self._stub = schedule_service_pb2_grpc.ScheduleServiceStub(channel)
        self._call = call

    async def create(self, name: str, *, tenant: str = "", **options: Any) -> Schedule:
        """Options: cron or interval, type, queue, payload (JSON text or a value), priority,
        max_attempts, time_zone, overlap, catch_up, catch_up_window, jitter, start_at,
        end_at, paused."""
        message, _ = _message(name, tenant, options)
        request = pb.CreateScheduleRequest(schedule=message)
        return schedule_from_pb(await self._call(self._stub.CreateSchedule, request))

    async def update(self, name: str, *, tenant: str = "", **changes: Any) -> Schedule:
        message, paths = _message(name, tenant, changes)
        request = pb.UpdateScheduleRequest(
            schedule=message, update_mask=field_mask_pb2.FieldMask(paths=paths)
        )
        return schedule_from_pb(await self._call(self._stub.UpdateSchedule, request))

    async def get(self, name: str, tenant: str = "") -> ScheduleDetails:
        request = pb.GetScheduleRequest(name=name, tenant=tenant)
        m = await self._call(self._stub.GetSchedule, request)
        return ScheduleDetails(
            schedule_from_pb(m),
            [from_timestamp(t) for t in m.next_fire_times],
            [run_from_pb(r) for r in m.recent_runs],
        )

    async def list(self, tenant: str = "") -> builtins.list[Schedule]:
        request = pb.ListSchedulesRequest(tenant=tenant)
        response = await self._call(self._stub.ListSchedules, request)
        return [schedule_from_pb(s) for s in response.schedules]

    async def pause(self, name: str, tenant: str = "") -> Schedule:
        request = pb.PauseScheduleRequest(name=name, tenant=tenant)
        return schedule_from_pb(await self._call(self._stub.PauseSchedule, request))

    async def resume(self, name: str, tenant: str = "") -> Schedule:
        request = pb.ResumeScheduleRequest(name=name, tenant=tenant)
        return schedule_from_pb(await self._call(self._stub.ResumeSchedule, request))

    async def delete(self, name: str, tenant: str = "") -> None:
        await self._call(
            self._stub.DeleteSchedule, pb.DeleteScheduleRequest(name=name, tenant=tenant)
        )

    async def trigger(self, name: str, tenant: str = "") -> ScheduleRun:
        request = pb.TriggerScheduleRequest(name=name, tenant=tenant)
        return run_from_pb((await self._call(self._stub.TriggerSchedule, request)).run)
