"""Schedules (ADR 0014), written once over the dialect port like the job repository.

A schedule row is written whole: an update reads the row under the transaction's lock,
applies the changes to the `Schedule` and writes every mutable column back, so there is
one UPDATE text per dialect instead of one built per set of changed fields. The leader's
`record` advances a row only if it still holds the fire times the leader read (a compare
and set), so two replicas that both think they lead cannot fire one time twice.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any

from jobq.core.errors import AlreadyExists, NotFound
from jobq.core.model import JobEvent
from jobq.core.schedules import (
    RUNS_KEPT,
    Advance,
    CatchUp,
    Overlap,
    RunOutcome,
    Schedule,
    ScheduledJob,
    ScheduleRun,
    fired_details,
)
from jobq.core.states import EventKind
from jobq.ids import new_id
from jobq.store.base import Tenant
from jobq.store.sql.jobs import event_row
from jobq.store.sql.port import Dialect, Row


def schedule_params(s: Schedule) -> dict[str, Any]:
    """Every column of a schedule row, in domain types: the dialect encodes them."""
    return {
        "id": s.id,
        "tenant": s.tenant,
        "name": s.name,
        "cron": s.cron,
        "every": s.interval,
        "time_zone": s.time_zone,
        "job_type": s.job.type,
        "queue": s.job.queue,
        "payload": s.job.payload,
        "priority": s.job.priority,
        "max_attempts": s.job.max_attempts,
        "overlap": s.overlap.value,
        "catch_up": s.catch_up.value,
        "catch_up_window": s.catch_up_window,
        "jitter": s.jitter,
        "start_at": s.start_at,
        "end_at": s.end_at,
        "paused": s.paused,
        "next_fire_at": s.next_fire_at,
        "buffered_fire_at": s.buffered_fire_at,
        "last_job_id": s.last_job_id,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
    }


def _opt_id(value: Any) -> str | None:
    return None if value is None else str(value)


class SqlSchedules:
    def __init__(self, dialect: Dialect) -> None:
        self._d = dialect

    def _schedule(self, row: Row) -> Schedule:
        time, span = self._d.decode_time, self._d.decode_span
        return Schedule(
            id=str(row["id"]),
            tenant=row["tenant"],
            name=row["name"],
            job=ScheduledJob(
                type=row["job_type"],
                queue=row["queue"],
                payload=row["payload"],
                priority=row["priority"],
                max_attempts=row["max_attempts"],
            ),
            cron=row["cron"],
            interval=span(row["every"]),
            time_zone=row["time_zone"],
            overlap=Overlap(row["overlap"]),
            catch_up=CatchUp(row["catch_up"]),
            catch_up_window=span(row["catch_up_window"]),
            jitter=span(row["jitter"]),
            start_at=time(row["start_at"]),
            end_at=time(row["end_at"]),
            paused=bool(row["paused"]),
            next_fire_at=time(row["next_fire_at"]),
            buffered_fire_at=time(row["buffered_fire_at"]),
            last_job_id=_opt_id(row["last_job_id"]),
            created_at=time(row["created_at"]),
            updated_at=time(row["updated_at"]),
        )

    async def create(self, schedule: Schedule) -> Schedule:
        async with self._d.tx() as conn:
            if not await self._d.execute(
                conn, self._d.q.INSERT_SCHEDULE, schedule_params(schedule)
            ):
                raise AlreadyExists(
                    f"schedule {schedule.name!r} exists in tenant {schedule.tenant!r}"
                )
        return schedule

    async def get(self, name: str, *, tenant: str) -> Schedule | None:
        async with self._d.read() as conn:
            rows = await self._d.fetch(
                conn, self._d.q.SCHEDULE_BY_NAME, {"tenant": tenant, "name": name}
            )
        return self._schedule(rows[0]) if rows else None

    async def all(self, *, tenant: Tenant = None) -> list[Schedule]:
        async with self._d.read() as conn:
            rows = await self._d.fetch(conn, self._d.q.SCHEDULES, {"tenant": tenant})
        return [self._schedule(r) for r in rows]

    async def update(
        self, name: str, changes: dict[str, Any], now: dt.datetime, *, tenant: str
    ) -> Schedule:
        async with self._d.tx() as conn:
            rows = await self._d.fetch(
                conn, self._d.q.SCHEDULE_BY_NAME_LOCKED, {"tenant": tenant, "name": name}
            )
            if not rows:
                raise NotFound(f"schedule {name!r} not found")
            updated = dataclasses.replace(self._schedule(rows[0]), **changes, updated_at=now)
            await self._d.execute(conn, self._d.q.UPDATE_SCHEDULE, schedule_params(updated))
        return updated

    async def delete(self, name: str, *, tenant: str) -> None:
        async with self._d.tx() as conn:
            if not await self._d.execute(
                conn, self._d.q.DELETE_SCHEDULE, {"tenant": tenant, "name": name}
            ):
                raise NotFound(f"schedule {name!r} not found")

    async def due(self, now: dt.datetime, limit: int) -> list[Schedule]:
        async with self._d.read() as conn:
            rows = await self._d.fetch(conn, self._d.q.DUE_SCHEDULES, {"now": now, "limit": limit})
        return [self._schedule(r) for r in rows]

    async def record(
        self,
        schedule_id: str,
        runs: Sequence[ScheduleRun],
        advance: Advance,
        now: dt.datetime,
    ) -> bool:
        async with self._d.tx() as conn:
            advanced = await self._d.fetch(
                conn,
                self._d.q.ADVANCE_SCHEDULE,
                {
                    "id": schedule_id,
                    "next": advance.next_fire_at,
                    "buffered": advance.buffered_fire_at,
                    "last_job_id": advance.last_job_id,
                    "expected_next": advance.expected_next,
                    "expected_buffered": advance.expected_buffered,
                },
            )
            if not advanced:
                return False
            (row,) = advanced
            events = []
            for run in runs:
                recorded = await self._d.execute(
                    conn,
                    self._d.q.INSERT_SCHEDULE_RUN,
                    {
                        "schedule_id": schedule_id,
                        "fire_at": run.fire_at,
                        "manual": run.manual,
                        "outcome": run.outcome.value,
                        "job_id": run.job_id,
                        "recorded_at": run.recorded_at,
                    },
                )
                if recorded and run.outcome is RunOutcome.SUBMITTED and run.job_id:
                    events.append(
                        JobEvent(
                            id=new_id(),
                            job_id=run.job_id,
                            kind=EventKind.SCHEDULE_FIRED,
                            from_state=None,
                            to_state=None,
                            attempt=0,
                            at=now,
                            details=fired_details(schedule_id, row["name"], run),
                            queue=row["queue"],
                            tenant=row["tenant"],
                        )
                    )
            if events:
                await self._d.write(
                    conn, self._d.q.EVENTS, {}, events=[event_row(e) for e in events]
                )
            if runs:
                await self._d.execute(
                    conn, self._d.q.PRUNE_SCHEDULE_RUNS, {"id": schedule_id, "keep": RUNS_KEPT}
                )
        return True

    async def runs(self, schedule_id: str, limit: int) -> list[ScheduleRun]:
        async with self._d.read() as conn:
            rows = await self._d.fetch(
                conn, self._d.q.SCHEDULE_RUNS, {"id": schedule_id, "limit": limit}
            )
        return [
            ScheduleRun(
                fire_at=self._d.decode_time(r["fire_at"]),
                outcome=RunOutcome(r["outcome"]),
                job_id=_opt_id(r["job_id"]),
                recorded_at=self._d.decode_time(r["recorded_at"]),
                manual=bool(r["manual"]),
            )
            for r in rows
        ]
