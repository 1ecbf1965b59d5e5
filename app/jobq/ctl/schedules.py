"""jq-ctl schedules: create, update, list, get, pause, resume, delete, trigger (role operator
or admin). `get` shows the next fire times and the latest runs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table

from jobq.client import AsyncClient
from jobq.client._schedules import ScheduleDetails
from jobq.core.durations import format_duration
from jobq.core.schedules import CatchUp, Overlap, Schedule
from jobq.ctl import render

T = TypeVar("T")

schedules_app = typer.Typer(
    no_args_is_help=True, help="Periodic jobs: create, list, get, pause, resume, trigger."
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Tenant = Annotated[
    str, typer.Option("--tenant", help="Whose schedule (default: the caller's own tenant).")
]
Cron = Annotated[
    str | None, typer.Option("--cron", help="5 fields, or 6 with seconds first: '0 3 * * *'.")
]
Every = Annotated[str | None, typer.Option("--every", help="A fixed interval instead: 10m.")]
TaskType = Annotated[str | None, typer.Option("--type", help="Task type of each run's job.")]
Payload = Annotated[str | None, typer.Option("--payload", help="JSON payload of each job.")]
QueueOpt = Annotated[str | None, typer.Option("--queue", "-q", help="Queue (default: default).")]
Zone = Annotated[str | None, typer.Option("--tz", help="IANA time zone of --cron (UTC).")]
OverlapOpt = Annotated[
    Overlap | None, typer.Option("--overlap", help="The previous run unfinished: (skip).")
]
CatchUpOpt = Annotated[
    CatchUp | None, typer.Option("--catch-up", help="Missed fire times: each or latest.")
]
Window = Annotated[str | None, typer.Option("--catch-up-window", help="Run none older (5m).")]
Jitter = Annotated[str | None, typer.Option("--jitter", help="Start each run up to this late.")]
Start = Annotated[str | None, typer.Option("--start", help="No fire before (ISO 8601).")]
End = Annotated[str | None, typer.Option("--end", help="No fire after (ISO 8601).")]
Priority = Annotated[int | None, typer.Option("--priority", help="-100..100.")]
Attempts = Annotated[int | None, typer.Option("--max-attempts", help="0: the queue's.")]


def _run(work: Callable[[AsyncClient], Coroutine[Any, Any, T]]) -> T:
    from jobq.ctl.main import run  # main registers this group: imported when a command runs

    return run(work)


def _fail(message: str) -> typer.Exit:
    from jobq.ctl.main import fail

    return fail(message, 2)


def _time(value: str | None, name: str) -> dt.datetime | None:
    if value is None:
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise _fail(f"{name}: {value!r} is not an ISO 8601 time") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _options(**given: Any) -> dict[str, Any]:
    from jobq.ctl.main import duration_option, parse_payload

    options: dict[str, Any] = {}
    for key, value in given.items():
        if value is None:
            continue
        if key == "payload":
            value = parse_payload(value)
        elif key in ("interval", "catch_up_window", "jitter"):
            value = duration_option(value, "--" + key.replace("_", "-"))
        elif key in ("start_at", "end_at"):
            value = _time(value, "--" + key.removesuffix("_at"))
        elif key in ("overlap", "catch_up"):
            value = value.value
        options[key] = value
    return options


def _when(value: dt.datetime | None) -> str:
    return value.isoformat() if value else ""


def _calendar(s: Schedule) -> str:
    if s.cron:
        return f"{s.cron} ({s.time_zone})"
    return f"every {format_duration(s.interval)}" if s.interval else ""


def schedules_table(schedules: list[Schedule]) -> None:
    table = Table()
    for column in ("SCHEDULE", "TENANT", "CALENDAR", "TYPE", "QUEUE", "OVERLAP", "PAUSED", "NEXT"):
        table.add_column(column)
    for s in schedules:
        table.add_row(
            s.name,
            s.tenant,
            _calendar(s),
            s.job.type,
            s.job.queue,
            s.overlap.value,
            "yes" if s.paused else "",
            _when(s.next_fire_at),
        )
    render.out.print(table)


def schedule_detail(details: ScheduleDetails) -> None:
    s = details.schedule
    for label, value in (
        ("schedule", s.name),
        ("tenant", s.tenant),
        ("id", s.id),
        ("calendar", _calendar(s)),
        ("job", f"{s.job.type} on {s.job.queue}, payload {s.job.payload}"),
        ("overlap", s.overlap.value),
        ("catch-up", f"{s.catch_up.value} within {format_duration(s.catch_up_window)}"),
        ("jitter", format_duration(s.jitter) if s.jitter else ""),
        ("start", _when(s.start_at)),
        ("end", _when(s.end_at)),
        ("paused", "yes" if s.paused else "no"),
    ):
        if value:
            render.out.print(f"{label}: {value}")
    render.out.print("next fire times:")
    for fire in details.next_fire_times:
        render.out.print(f"  {fire.isoformat()}")
    table = Table(title="last runs")
    for column in ("FIRE TIME", "OUTCOME", "JOB", "MANUAL"):
        table.add_column(column)
    for run in details.recent_runs:
        table.add_row(
            run.fire_at.isoformat(),
            run.outcome.value,
            run.job_id or "",
            "yes" if run.manual else "",
        )
    render.out.print(table)


@schedules_app.command("create")
def create(
    name: str,
    cron: Cron = None,
    every: Every = None,
    type: TaskType = None,
    payload: Payload = None,
    queue: QueueOpt = None,
    tz: Zone = None,
    overlap: OverlapOpt = None,
    catch_up: CatchUpOpt = None,
    catch_up_window: Window = None,
    jitter: Jitter = None,
    start: Start = None,
    end: End = None,
    priority: Priority = None,
    max_attempts: Attempts = None,
    tenant: Tenant = "",
    json_out: JsonFlag = False,
) -> None:
    """Create a schedule: one job of --type per fire time of --cron (or --every)."""
    if type is None:
        raise _fail("--type: name the task type each run submits")
    options = _options(
        cron=cron,
        interval=every,
        type=type,
        payload=payload,
        queue=queue,
        time_zone=tz,
        overlap=overlap,
        catch_up=catch_up,
        catch_up_window=catch_up_window,
        jitter=jitter,
        start_at=start,
        end_at=end,
        priority=priority,
        max_attempts=max_attempts,
    )
    schedule = _run(lambda c: c.schedules.create(name, tenant=tenant, **options))
    render.emit_json(schedule) if json_out else schedules_table([schedule])


@schedules_app.command("update")
def update(
    name: str,
    cron: Cron = None,
    every: Every = None,
    type: TaskType = None,
    payload: Payload = None,
    queue: QueueOpt = None,
    tz: Zone = None,
    overlap: OverlapOpt = None,
    catch_up: CatchUpOpt = None,
    catch_up_window: Window = None,
    jitter: Jitter = None,
    start: Start = None,
    end: End = None,
    priority: Priority = None,
    max_attempts: Attempts = None,
    tenant: Tenant = "",
    json_out: JsonFlag = False,
) -> None:
    """Change a schedule; only the options given change. A new calendar fires from now on."""
    changes = _options(
        cron=cron,
        interval=every,
        type=type,
        payload=payload,
        queue=queue,
        time_zone=tz,
        overlap=overlap,
        catch_up=catch_up,
        catch_up_window=catch_up_window,
        jitter=jitter,
        start_at=start,
        end_at=end,
        priority=priority,
        max_attempts=max_attempts,
    )
    if not changes:
        raise _fail("name at least one option to change")
    schedule = _run(lambda c: c.schedules.update(name, tenant=tenant, **changes))
    render.emit_json(schedule) if json_out else schedules_table([schedule])


@schedules_app.command("list")
def list_schedules(tenant: Tenant = "", json_out: JsonFlag = False) -> None:
    """List schedules with their next fire time."""
    schedules = _run(lambda c: c.schedules.list(tenant))
    render.emit_json(schedules) if json_out else schedules_table(schedules)


@schedules_app.command("get")
def get(name: str, tenant: Tenant = "", json_out: JsonFlag = False) -> None:
    """A schedule, its next fire times and its last runs."""
    details = _run(lambda c: c.schedules.get(name, tenant))
    render.emit_json(details) if json_out else schedule_detail(details)


@schedules_app.command("pause")
def pause(name: str, tenant: Tenant = "", json_out: JsonFlag = False) -> None:
    """Stop firing; nothing is caught up on resume."""
    schedule = _run(lambda c: c.schedules.pause(name, tenant))
    render.emit_json(schedule) if json_out else render.out.print(f"paused {name}")


@schedules_app.command("resume")
def resume(name: str, tenant: Tenant = "", json_out: JsonFlag = False) -> None:
    """Fire again, from the next fire time after now."""
    schedule = _run(lambda c: c.schedules.resume(name, tenant))
    render.emit_json(schedule) if json_out else render.out.print(f"resumed {name}")


@schedules_app.command("delete")
def delete(name: str, tenant: Tenant = "", json_out: JsonFlag = False) -> None:
    """Delete a schedule and its run history; the jobs it submitted stay."""
    _run(lambda c: c.schedules.delete(name, tenant))
    render.emit_json({"deleted": name}) if json_out else render.out.print(f"deleted {name}")


@schedules_app.command("trigger")
def trigger(name: str, tenant: Tenant = "", json_out: JsonFlag = False) -> None:
    """Submit one run now, outside the calendar and the overlap policy."""
    run = _run(lambda c: c.schedules.trigger(name, tenant))
    render.emit_json(run) if json_out else render.out.print(f"submitted {run.job_id}")
