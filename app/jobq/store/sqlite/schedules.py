"""The SQLite schedule repository (ADR 0014)."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Sequence
from typing import Any

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
from jobq.store.sqlite.db import (
    SqliteDb,
    from_us,
    opt_from_us,
    opt_span,
    opt_span_us,
    opt_to_us,
    span_us,
    to_us,
)

_TIMES = ("start_at", "end_at", "next_fire_at", "buffered_fire_at")
_SPANS = {"interval": "every_us", "catch_up_window": "catch_up_window_us", "jitter": "jitter_us"}
_PLAIN = ("cron", "time_zone", "last_job_id")
JOB_COLUMNS = {
    "type": "job_type",
    "queue": "queue",
    "payload": "payload",
    "priority": "priority",
    "max_attempts": "max_attempts",
}

INSERT_SCHEDULE = """
INSERT INTO schedules (id, tenant, name, cron, every_us, time_zone, job_type, queue, payload,
                       priority, max_attempts, overlap, catch_up, catch_up_window_us, jitter_us,
                       start_at, end_at, paused, next_fire_at, buffered_fire_at, last_job_id,
                       created_at, updated_at)
VALUES (:id, :tenant, :name, :cron, :every_us, :time_zone, :job_type, :queue, :payload,
        :priority, :max_attempts, :overlap, :catch_up, :catch_up_window_us, :jitter_us,
        :start_at, :end_at, :paused, :next_fire_at, :buffered_fire_at, :last_job_id,
        :created_at, :updated_at)
ON CONFLICT (tenant, name) DO NOTHING
"""

DUE = """
SELECT * FROM schedules
WHERE paused = 0 AND (next_fire_at <= ? OR buffered_fire_at IS NOT NULL)
ORDER BY next_fire_at IS NULL, next_fire_at, id LIMIT ?
"""

ADVANCE = """
UPDATE schedules SET next_fire_at = :next, buffered_fire_at = :buffered,
                     last_job_id = :last_job_id
WHERE id = :id AND next_fire_at IS :expected_next AND buffered_fire_at IS :expected_buffered
"""

INSERT_RUN = """
INSERT INTO schedule_runs (schedule_id, fire_at, manual, outcome, job_id, recorded_at)
VALUES (?, ?, ?, ?, ?, ?)
-- A buffered fire time is recorded again once it is submitted; any other run is kept.
ON CONFLICT (schedule_id, fire_at, manual) DO UPDATE
  SET outcome = excluded.outcome, job_id = excluded.job_id, recorded_at = excluded.recorded_at
  WHERE schedule_runs.outcome = 'buffered' AND excluded.outcome <> 'buffered'
"""

INSERT_EVENT = """
INSERT INTO job_events (id, job_id, queue, tenant, kind, from_state, to_state, attempt, at,
                        details)
VALUES (?, ?, ?, ?, ?, NULL, NULL, 0, ?, ?)
"""

PRUNE_RUNS = """
DELETE FROM schedule_runs WHERE schedule_id = :id AND (fire_at, manual) IN (
  SELECT fire_at, manual FROM schedule_runs WHERE schedule_id = :id
  ORDER BY fire_at DESC, manual DESC LIMIT -1 OFFSET :keep)
"""


def schedule_params(s: Schedule) -> dict[str, Any]:
    assert s.created_at is not None and s.updated_at is not None
    return {
        "id": s.id,
        "tenant": s.tenant,
        "name": s.name,
        "cron": s.cron,
        "every_us": opt_span_us(s.interval),
        "time_zone": s.time_zone,
        "job_type": s.job.type,
        "queue": s.job.queue,
        "payload": s.job.payload,
        "priority": s.job.priority,
        "max_attempts": s.job.max_attempts,
        "overlap": s.overlap.value,
        "catch_up": s.catch_up.value,
        "catch_up_window_us": span_us(s.catch_up_window),
        "jitter_us": span_us(s.jitter),
        "start_at": opt_to_us(s.start_at),
        "end_at": opt_to_us(s.end_at),
        "paused": int(s.paused),
        "next_fire_at": opt_to_us(s.next_fire_at),
        "buffered_fire_at": opt_to_us(s.buffered_fire_at),
        "last_job_id": s.last_job_id,
        "created_at": to_us(s.created_at),
        "updated_at": to_us(s.updated_at),
    }


def schedule_from_row(row: sqlite3.Row) -> Schedule:
    return Schedule(
        id=row["id"],
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
        interval=opt_span(row["every_us"]),
        time_zone=row["time_zone"],
        overlap=Overlap(row["overlap"]),
        catch_up=CatchUp(row["catch_up"]),
        catch_up_window=opt_span(row["catch_up_window_us"]) or dt.timedelta(0),
        jitter=opt_span(row["jitter_us"]) or dt.timedelta(0),
        start_at=opt_from_us(row["start_at"]),
        end_at=opt_from_us(row["end_at"]),
        paused=bool(row["paused"]),
        next_fire_at=opt_from_us(row["next_fire_at"]),
        buffered_fire_at=opt_from_us(row["buffered_fire_at"]),
        last_job_id=row["last_job_id"],
        created_at=from_us(row["created_at"]),
        updated_at=from_us(row["updated_at"]),
    )


def _change_params(changes: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for field, value in changes.items():
        if field == "job":
            for name, column in JOB_COLUMNS.items():
                params[column] = getattr(value, name)
        elif field in _TIMES:
            params[field] = opt_to_us(value)
        elif field in _SPANS:
            params[_SPANS[field]] = opt_span_us(value)
        elif field in ("overlap", "catch_up"):
            params[field] = value.value
        elif field == "paused":
            params[field] = int(value)
        elif field in _PLAIN:
            params[field] = value
        else:
            raise KeyError(field)
    return params


class SqliteSchedules:
    def __init__(self, db: SqliteDb) -> None:
        self._db = db

    async def create(self, schedule: Schedule) -> Schedule:
        async with self._db.tx() as conn:
            cursor = await conn.execute(INSERT_SCHEDULE, schedule_params(schedule))
            if cursor.rowcount == 0:
                raise AlreadyExists(
                    f"schedule {schedule.name!r} exists in tenant {schedule.tenant!r}"
                )
        return schedule

    async def get(self, name: str, *, tenant: str) -> Schedule | None:
        async with self._db.read() as conn:
            cursor = await conn.execute(
                "SELECT * FROM schedules WHERE tenant = ? AND name = ?", (tenant, name)
            )
            row = await cursor.fetchone()
        return None if row is None else schedule_from_row(row)

    async def all(self, *, tenant: Tenant = None) -> list[Schedule]:
        async with self._db.read() as conn:
            cursor = await conn.execute(
                "SELECT * FROM schedules WHERE :tenant IS NULL OR tenant = :tenant"
                " ORDER BY tenant, name",
                {"tenant": tenant},
            )
            return [schedule_from_row(r) for r in await cursor.fetchall()]

    async def update(
        self, name: str, changes: dict[str, Any], now: dt.datetime, *, tenant: str
    ) -> Schedule:
        params = _change_params(changes) | {"updated_at": to_us(now)}
        sets = ", ".join(f"{column} = :{column}" for column in params)
        async with self._db.tx() as conn:
            cursor = await conn.execute(
                f"UPDATE schedules SET {sets}"  # columns from the tables above
                " WHERE tenant = :w_tenant AND name = :w_name",
                params | {"w_tenant": tenant, "w_name": name},
            )
            if cursor.rowcount == 0:
                raise NotFound(f"schedule {name!r} not found")
            cursor = await conn.execute(
                "SELECT * FROM schedules WHERE tenant = ? AND name = ?", (tenant, name)
            )
            row = await cursor.fetchone()
        assert row is not None
        return schedule_from_row(row)

    async def delete(self, name: str, *, tenant: str) -> None:
        async with self._db.tx() as conn:
            cursor = await conn.execute(
                "DELETE FROM schedules WHERE tenant = ? AND name = ?", (tenant, name)
            )
            if cursor.rowcount == 0:
                raise NotFound(f"schedule {name!r} not found")

    async def due(self, now: dt.datetime, limit: int) -> list[Schedule]:
        async with self._db.read() as conn:
            cursor = await conn.execute(DUE, (to_us(now), limit))
            return [schedule_from_row(r) for r in await cursor.fetchall()]

    async def record(
        self,
        schedule_id: str,
        runs: Sequence[ScheduleRun],
        advance: Advance,
        now: dt.datetime,
    ) -> bool:
        async with self._db.tx() as conn:
            cursor = await conn.execute(
                ADVANCE,
                {
                    "id": schedule_id,
                    "next": opt_to_us(advance.next_fire_at),
                    "buffered": opt_to_us(advance.buffered_fire_at),
                    "last_job_id": advance.last_job_id,
                    "expected_next": opt_to_us(advance.expected_next),
                    "expected_buffered": opt_to_us(advance.expected_buffered),
                },
            )
            if cursor.rowcount == 0:
                return False
            cursor = await conn.execute(
                "SELECT tenant, name, queue FROM schedules WHERE id = ?", (schedule_id,)
            )
            row = await cursor.fetchone()
            assert row is not None
            for run in runs:
                cursor = await conn.execute(
                    INSERT_RUN,
                    (
                        schedule_id,
                        to_us(run.fire_at),
                        int(run.manual),
                        run.outcome.value,
                        run.job_id,
                        to_us(run.recorded_at),
                    ),
                )
                if cursor.rowcount and run.outcome is RunOutcome.SUBMITTED and run.job_id:
                    await conn.execute(
                        INSERT_EVENT,
                        (
                            new_id(),
                            run.job_id,
                            row["queue"],
                            row["tenant"],
                            EventKind.SCHEDULE_FIRED.value,
                            to_us(now),
                            json.dumps(fired_details(schedule_id, row["name"], run)),
                        ),
                    )
            if runs:
                await conn.execute(PRUNE_RUNS, {"id": schedule_id, "keep": RUNS_KEPT})
        return True

    async def runs(self, schedule_id: str, limit: int) -> list[ScheduleRun]:
        async with self._db.read() as conn:
            cursor = await conn.execute(
                "SELECT * FROM schedule_runs WHERE schedule_id = ?"
                " ORDER BY fire_at DESC, manual DESC LIMIT ?",
                (schedule_id, limit),
            )
            return [
                ScheduleRun(
                    fire_at=from_us(r["fire_at"]),
                    outcome=RunOutcome(r["outcome"]),
                    job_id=r["job_id"],
                    recorded_at=from_us(r["recorded_at"]),
                    manual=bool(r["manual"]),
                )
                for r in await cursor.fetchall()
            ]
