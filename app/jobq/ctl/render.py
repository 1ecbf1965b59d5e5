"""How jq-ctl prints: --json for machines, tables for people."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from jobq.core.durations import format_duration
from jobq.core.model import Job, QueueConfig, QueueStats, WorkerInfo
from jobq.core.states import JobState

# Piped output is read by scripts and pagers: do not squeeze tables into 80 columns.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, highlight=False)


def plain(value: Any) -> Any:
    """JSON-ready form of model objects (datetimes ISO 8601, durations in seconds)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        data = {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, Job):
            # The SDK has decoded payload and result; attempts counts those since a replay.
            data["attempts_used"] = value.attempts_used
            data.pop("attempt_base", None)
        return data
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def emit_json(value: Any) -> None:
    # Flushed per line: `jq-ctl watch --json | jq` shows each update as it happens.
    print(json.dumps(plain(value), indent=None, separators=(",", ":")), flush=True)


def _when(value: dt.datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _short(text: str | None, width: int = 40) -> str:
    text = text or ""
    return text if len(text) <= width else text[: width - 1] + "…"


def value_text(value: Any) -> str:
    """A payload or result as the JSON it was sent as; nothing for none."""
    return "" if value is None else json.dumps(value)


def attempts(job: Job) -> str:
    """Attempts used of those allowed: after a replay the count starts again, so a job
    replayed once after 3 of 3 shows 1 of 3 on its next run, not 4 of 3."""
    return f"{job.attempts_used} of {job.max_attempts}"


def nothing(what: str) -> None:
    out.print(f"no {what}")


def jobs_table(jobs: Sequence[Job], title: str = "") -> None:
    if not jobs:
        nothing("jobs" if not title else title.lower())
        return
    table = Table(title=title or None, show_lines=False)
    for column in ("ID", "QUEUE", "TYPE", "STATE", "PRI", "ATTEMPT", "CREATED", "DETAIL"):
        table.add_column(column, no_wrap=column in ("ID", "STATE"))
    for job in jobs:
        if job.state in (JobState.DEAD, JobState.SCHEDULED):
            detail = job.last_error
        elif job.state is JobState.RUNNING:  # the runbooks ask which worker runs it
            detail = f"on {job.worker_id}"
        else:
            detail = value_text(job.result)
        table.add_row(
            job.id,
            job.queue,
            job.type,
            job.state.value,
            str(job.priority),
            attempts(job),
            _when(job.created_at),
            _short(detail),
        )
    out.print(table)


def job_detail(job: Job) -> None:
    rows: list[tuple[str, Any]] = [
        ("id", job.id),
        ("queue", job.queue),
        ("type", job.type),
        ("state", job.state.value),
        ("priority", job.priority),
        ("attempts", attempts(job)),
        ("payload", value_text(job.payload)),
        ("result", value_text(job.result)),
        ("last error", job.last_error or ""),
        ("progress", f"{job.progress:.0%} {job.progress_message}".strip()),
        ("cancel requested", "yes" if job.cancel_requested else ""),
        ("worker", job.worker_id or ""),
        ("idempotency key", job.idempotency_key or ""),
        ("run at", _when(job.run_at)),
        ("created", _when(job.created_at)),
        ("started", _when(job.started_at)),
        ("finished", _when(job.finished_at)),
        ("expires", _when(job.expires_at)),
        ("correlation id", job.correlation_id),
    ]
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    for name, value in rows:
        if value not in ("", None):
            table.add_row(name, str(value))
    out.print(table)


def queues_table(queues: Sequence[QueueConfig]) -> None:
    if not queues:
        nothing("queues")
        return
    table = Table()
    for column in (
        "QUEUE",
        "TENANT",
        "PAUSED",
        "WEIGHT",
        "MAX ATTEMPTS",
        "LEASE",
        "BACKOFF",
        "TTL",
        "CONCURRENCY",
        "RETENTION",
        "LIMITS",
    ):
        table.add_column(column)
    for q in queues:
        table.add_row(
            q.name,
            q.tenant,
            "yes" if q.paused else "",
            str(q.weight),
            str(q.max_attempts),
            format_duration(q.lease_timeout),
            f"{format_duration(q.backoff_base)}..{format_duration(q.backoff_max)}",
            format_duration(q.default_ttl) if q.default_ttl else "",
            str(q.concurrency_limit or ""),
            format_duration(q.retention),
            limits_text(q),
        )
    out.print(table)


def limits_text(q: QueueConfig) -> str:
    """The lease-time limits that are set, e.g. "rate 200/s burst 50, per key 1 running"."""
    parts = []
    if q.rate_limit:
        parts.append(f"rate {q.rate_limit:g}/s burst {max(q.rate_burst, 1)}")
    if q.key_rate_limit:
        parts.append(f"per key {q.key_rate_limit:g}/s burst {max(q.key_rate_burst, 1)}")
    if q.key_concurrency_limit:
        parts.append(f"per key {q.key_concurrency_limit} running")
    return ", ".join(parts)


def stats_table(stats: Sequence[QueueStats]) -> None:
    if not stats:
        nothing("queues")
        return
    states = ("scheduled", "queued", "running", "succeeded", "dead", "cancelled", "expired")
    table = Table()
    table.add_column("QUEUE")
    table.add_column("TENANT")
    table.add_column("PAUSED")
    for state in states:
        table.add_column(state.upper(), justify="right")
    table.add_column("OLDEST QUEUED", justify="right")
    for s in stats:
        table.add_row(
            s.queue,
            s.tenant,
            "yes" if s.paused else "",
            *(str(s.by_state.get(state, 0)) for state in states),
            f"{s.oldest_queued_age_seconds:.1f}s" if s.oldest_queued_age_seconds else "",
        )
    out.print(table)


def workers_table(workers: Sequence[WorkerInfo]) -> None:
    if not workers:
        nothing("workers")
        return
    table = Table()
    columns = (
        "ID",
        "TENANT",
        "HOST",
        "STATE",
        "QUEUES",
        "TASKS",
        "IN FLIGHT",
        "CAPACITY",
        "LAST HEARTBEAT",
    )
    for column in columns:
        table.add_column(column, no_wrap=column == "ID")
    for w in workers:
        table.add_row(
            w.id,
            w.tenant,
            w.hostname,
            w.state.value,
            ",".join(w.queues),
            _short(",".join(w.task_types) or "*"),
            str(w.in_flight),
            str(w.capacity),
            _when(w.last_heartbeat),
        )
    out.print(table)


def cluster_table(data: dict[str, Any]) -> None:
    """jq-ctl stats: one table of totals, one of jobs by state."""
    totals = Table(show_header=False, box=None)
    totals.add_column(style="bold")
    totals.add_column(justify="right")
    totals.add_row("queues", str(data["queues"]))
    totals.add_row("active workers", str(data["active_workers"]))
    totals.add_row("outbox backlog", str(data["outbox_backlog"]))
    out.print(totals)
    by_state = Table(title="jobs by state")
    by_state.add_column("STATE")
    by_state.add_column("JOBS", justify="right")
    for name, count in sorted(data["jobs_by_state"].items()):
        by_state.add_row(name, str(count))
    out.print(by_state if data["jobs_by_state"] else "no jobs")


def keys_table(keys: Sequence[Any]) -> None:
    if not keys:
        nothing("API keys")
        return
    table = Table(title="API keys")
    for column in ("id", "tenant", "roles", "queues", "created", "expires", "revoked", "about"):
        table.add_column(column)
    for key in keys:
        table.add_row(
            key.id,
            key.tenant,
            ",".join(key.roles),
            ",".join(key.queues) or "*",
            _when(key.created_at),
            _when(key.expires_at),
            _when(key.revoked_at),
            _short(key.description),
        )
    out.print(table)
