"""The PostgreSQL schedule repository (ADR 0014)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from psycopg.types.json import Jsonb

from jobq.core.errors import AlreadyExists, NotFound
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
from jobq.store.postgres.db import PgDb

# Schedule field -> column, for the fields a column holds as they are.
COLUMNS: dict[str, str] = {
    "cron": "cron",
    "interval": "every",
    "time_zone": "time_zone",
    "overlap": "overlap",
    "catch_up": "catch_up",
    "catch_up_window": "catch_up_window",
    "jitter": "jitter",
    "start_at": "start_at",
    "end_at": "end_at",
    "paused": "paused",
    "next_fire_at": "next_fire_at",
    "buffered_fire_at": "buffered_fire_at",
    "last_job_id": "last_job_id",
}
JOB_COLUMNS = {
    "type": "job_type",
    "queue": "queue",
    "payload": "payload",
    "priority": "priority",
    "max_attempts": "max_attempts",
}

INSERT_SCHEDULE = """
INSERT INTO schedules (id, tenant, name, cron, every, time_zone, job_type, queue, payload,
                       priority, max_attempts, overlap, catch_up, catch_up_window, jitter,
                       start_at, end_at, paused, next_fire_at, buffered_fire_at, last_job_id,
                       created_at, updated_at)
VALUES (%(id)s, %(tenant)s, %(name)s, %(cron)s, %(every)s, %(time_zone)s, %(job_type)s,
        %(queue)s, %(payload)s, %(priority)s, %(max_attempts)s, %(overlap)s, %(catch_up)s,
        %(catch_up_window)s, %(jitter)s, %(start_at)s, %(end_at)s, %(paused)s,
        %(next_fire_at)s, %(buffered_fire_at)s, %(last_job_id)s, %(created_at)s,
        %(updated_at)s)
ON CONFLICT (tenant, name) DO NOTHING
"""

DUE = """
SELECT * FROM schedules
WHERE NOT paused AND (next_fire_at <= %s OR buffered_fire_at IS NOT NULL)
ORDER BY next_fire_at NULLS LAST, id LIMIT %s
"""

ADVANCE = """
UPDATE schedules SET next_fire_at = %(next)s, buffered_fire_at = %(buffered)s,
                     last_job_id = %(last_job_id)s
WHERE id = %(id)s AND next_fire_at IS NOT DISTINCT FROM %(expected_next)s
  AND buffered_fire_at IS NOT DISTINCT FROM %(expected_buffered)s
RETURNING tenant, name, queue
"""

INSERT_RUN = """
INSERT INTO schedule_runs (schedule_id, fire_at, manual, outcome, job_id, recorded_at)
VALUES (%s, %s, %s, %s, %s, %s)
-- A buffered fire time is recorded again once it is submitted; any other run is kept.
ON CONFLICT (schedule_id, fire_at, manual) DO UPDATE
  SET outcome = excluded.outcome, job_id = excluded.job_id, recorded_at = excluded.recorded_at
  WHERE schedule_runs.outcome = 'buffered' AND excluded.outcome <> 'buffered'
"""

INSERT_EVENT = """
INSERT INTO job_events (id, job_id, queue, tenant, kind, from_state, to_state, attempt, at,
                        details)
VALUES (%s, %s, %s, %s, %s, NULL, NULL, 0, %s, %s)
"""

PRUNE_RUNS = """
DELETE FROM schedule_runs WHERE schedule_id = %(id)s AND (fire_at, manual) IN (
  SELECT fire_at, manual FROM schedule_runs WHERE schedule_id = %(id)s
  ORDER BY fire_at DESC, manual DESC OFFSET %(keep)s)
"""


def schedule_params(s: Schedule) -> dict[str, Any]:
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


def schedule_from_row(row: dict[str, Any]) -> Schedule:
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
        interval=row["every"],
        time_zone=row["time_zone"],
        overlap=Overlap(row["overlap"]),
        catch_up=CatchUp(row["catch_up"]),
        catch_up_window=row["catch_up_window"],
        jitter=row["jitter"],
        start_at=row["start_at"],
        end_at=row["end_at"],
        paused=row["paused"],
        next_fire_at=row["next_fire_at"],
        buffered_fire_at=row["buffered_fire_at"],
        last_job_id=None if row["last_job_id"] is None else str(row["last_job_id"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _change_params(changes: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for field, value in changes.items():
        if field == "job":
            for name, column in JOB_COLUMNS.items():
                params[column] = getattr(value, name)
        else:
            params[COLUMNS[field]] = value.value if isinstance(value, Overlap | CatchUp) else value
    return params


class PgSchedules:
    def __init__(self, db: PgDb) -> None:
        self._db = db

    async def create(self, schedule: Schedule) -> Schedule:
        async with self._db.tx() as conn:
            cur = await conn.execute(INSERT_SCHEDULE, schedule_params(schedule))
            if cur.rowcount == 0:
                raise AlreadyExists(
                    f"schedule {schedule.name!r} exists in tenant {schedule.tenant!r}"
                )
        return schedule

    async def get(self, name: str, *, tenant: str) -> Schedule | None:
        async with self._db.read() as conn:
            cur = await conn.execute(
                "SELECT * FROM schedules WHERE tenant = %s AND name = %s", (tenant, name)
            )
            row = await cur.fetchone()
        return None if row is None else schedule_from_row(row)

    async def all(self, *, tenant: Tenant = None) -> list[Schedule]:
        async with self._db.read() as conn:
            cur = await conn.execute(
                "SELECT * FROM schedules WHERE %(tenant)s::text IS NULL OR tenant = %(tenant)s"
                " ORDER BY tenant, name",
                {"tenant": tenant},
            )
            return [schedule_from_row(r) for r in await cur.fetchall()]

    async def update(
        self, name: str, changes: dict[str, Any], now: dt.datetime, *, tenant: str
    ) -> Schedule:
        params = _change_params(changes) | {"updated_at": now}
        sets = ", ".join(f"{column} = %({column})s" for column in params)
        async with self._db.tx() as conn:
            cur = await conn.execute(
                f"UPDATE schedules SET {sets}"  # columns from COLUMNS only
                " WHERE tenant = %(w_tenant)s AND name = %(w_name)s RETURNING *",
                params | {"w_tenant": tenant, "w_name": name},
            )
            row = await cur.fetchone()
        if row is None:
            raise NotFound(f"schedule {name!r} not found")
        return schedule_from_row(row)

    async def delete(self, name: str, *, tenant: str) -> None:
        async with self._db.tx() as conn:
            cur = await conn.execute(
                "DELETE FROM schedules WHERE tenant = %s AND name = %s", (tenant, name)
            )
            if cur.rowcount == 0:
                raise NotFound(f"schedule {name!r} not found")

    async def due(self, now: dt.datetime, limit: int) -> list[Schedule]:
        async with self._db.read() as conn:
            cur = await conn.execute(DUE, (now, limit))
            return [schedule_from_row(r) for r in await cur.fetchall()]

    async def record(
        self,
        schedule_id: str,
        runs: Sequence[ScheduleRun],
        advance: Advance,
        now: dt.datetime,
    ) -> bool:
        async with self._db.tx() as conn:
            cur = await conn.execute(
                ADVANCE,
                {
                    "id": schedule_id,
                    "next": advance.next_fire_at,
                    "buffered": advance.buffered_fire_at,
                    "last_job_id": advance.last_job_id,
                    "expected_next": advance.expected_next,
                    "expected_buffered": advance.expected_buffered,
                },
            )
            row = await cur.fetchone()
            if row is None:
                return False
            for run in runs:
                cur = await conn.execute(
                    INSERT_RUN,
                    (
                        schedule_id,
                        run.fire_at,
                        run.manual,
                        run.outcome.value,
                        run.job_id,
                        run.recorded_at,
                    ),
                )
                if cur.rowcount and run.outcome is RunOutcome.SUBMITTED and run.job_id:
                    await conn.execute(
                        INSERT_EVENT,
                        (
                            new_id(),
                            run.job_id,
                            row["queue"],
                            row["tenant"],
                            EventKind.SCHEDULE_FIRED.value,
                            now,
                            Jsonb(fired_details(schedule_id, row["name"], run)),
                        ),
                    )
            if runs:
                await conn.execute(PRUNE_RUNS, {"id": schedule_id, "keep": RUNS_KEPT})
        return True

    async def runs(self, schedule_id: str, limit: int) -> list[ScheduleRun]:
        async with self._db.read() as conn:
            cur = await conn.execute(
                "SELECT * FROM schedule_runs WHERE schedule_id = %s"
                " ORDER BY fire_at DESC, manual DESC LIMIT %s",
                (schedule_id, limit),
            )
            return [
                ScheduleRun(
                    fire_at=r["fire_at"],
                    outcome=RunOutcome(r["outcome"]),
                    job_id=None if r["job_id"] is None else str(r["job_id"]),
                    recorded_at=r["recorded_at"],
                    manual=r["manual"],
                )
                for r in await cur.fetchall()
            ]
