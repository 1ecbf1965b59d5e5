"""jq-ctl: submit and inspect jobs, steer queues, workers and dead letters.

Every command takes --json; errors print one line on stderr and exit non-zero
(2: bad input, 3: not found, 4: conflict or wrong state, 5: server unavailable,
6: not authenticated or not allowed).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Coroutine, Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.progress import Progress

from jobq.auth.keys import bootstrap_entry, new_key
from jobq.auth.principal import Role
from jobq.client import AsyncClient, Tls
from jobq.config import ClientSettings, ConfigError, load
from jobq.core.durations import parse_duration
from jobq.core.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    JobqError,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)
from jobq.core.states import TERMINAL_STATES, JobState
from jobq.ctl import render
from jobq.ctl.events import events_app
from jobq.ctl.schedules import schedules_app
from jobq.ctl.workflows import workflows_app

T = TypeVar("T")

# add_completion: `jq-ctl --install-completion` / `--show-completion` for bash, zsh and fish.
app = typer.Typer(add_completion=True, no_args_is_help=True, help=__doc__)
queues_app = typer.Typer(no_args_is_help=True, help="Create, change, pause and inspect queues.")
workers_app = typer.Typer(no_args_is_help=True, help="List and drain workers.")
dlq_app = typer.Typer(no_args_is_help=True, help="Dead letters: list, replay, discard.")
keys_app = typer.Typer(no_args_is_help=True, help="API keys: create, list, revoke (role admin).")
app.add_typer(queues_app, name="queues")
app.add_typer(workers_app, name="workers")
app.add_typer(dlq_app, name="dlq")
app.add_typer(keys_app, name="keys")
app.add_typer(events_app, name="events")
app.add_typer(schedules_app, name="schedules")
app.add_typer(workflows_app, name="workflows")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Queue = Annotated[str, typer.Option("--queue", "-q", help="Queue name.")]

EXIT_CODES: list[tuple[type[JobqError], int]] = [
    (InvalidArgument, 2),
    (NotFound, 3),
    (AlreadyExists, 4),
    (FailedPrecondition, 4),
    (Unavailable, 5),
    (Unauthenticated, 6),
    (PermissionDenied, 6),
]


# What to try next, for the errors a new user meets first; printed under the error line.
HINTS: list[tuple[type[JobqError], str]] = [
    (
        Unavailable,
        "is jq-server running? Start one with `make run` (or `jq-server`), "
        "or point --server / JQ_SERVER_ADDRESS at it",
    ),
    (Unauthenticated, "give an API key with JQ_TOKEN (or --token)"),
    (PermissionDenied, "this key's roles do not allow it: see `jq-ctl keys list` (role admin)"),
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"jq-ctl {version('jobq')}")
        raise typer.Exit()


class State:
    server: str = ""
    token: str = ""
    tls: Tls | None = None


state = State()


@app.callback()
def options(
    server: Annotated[
        str,
        typer.Option(
            "--server",
            "-s",
            help="host:port of jq-server (env JQ_SERVER_ADDRESS, default 127.0.0.1:50051)",
        ),
    ] = "",
    token: Annotated[
        str, typer.Option("--token", help="API key or JWT (env JQ_TOKEN); prefer the env")
    ] = "",
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    try:
        settings = load(ClientSettings)
    except ConfigError as exc:
        fail(f"configuration error: {exc}", 2)
    state.server = server or settings.server_address
    state.token = token or settings.token
    state.tls = Tls.from_settings(settings)


def fail(message: str, code: int = 1, hint: str = "") -> typer.Exit:
    # One line, never wrapped or styled: scripts grep this. The hint is a second line.
    print(f"jq-ctl: error: {' '.join(message.split())}", file=sys.stderr)
    if hint:
        print(f"jq-ctl: hint: {hint}", file=sys.stderr)
    raise typer.Exit(code)


def warn(message: str) -> None:
    print(f"jq-ctl: warning: {' '.join(message.split())}", file=sys.stderr)


def confirm(question: str, yes: bool) -> None:
    """Ask before a destructive command; off a terminal there is nobody to ask, so refuse
    unless --yes says the caller means it."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise fail(f"{question.rstrip('?')}: refused without --yes (not a terminal)", 2)
    typer.confirm(question, abort=True)


def run(work: Callable[[AsyncClient], Coroutine[Any, Any, T]]) -> T:
    """Run one command's calls with a client, turning jobq errors into one line and an exit code."""

    async def main() -> T:
        async with AsyncClient(state.server, token=state.token, tls=state.tls) as client:
            return await work(client)

    try:
        return asyncio.run(main())
    except JobqError as exc:
        code = next((c for cls, c in EXIT_CODES if isinstance(exc, cls)), 1)
        hint = next((h for cls, h in HINTS if isinstance(exc, cls)), "")
        raise fail(f"{type(exc).__name__}: {exc}", code, hint) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def parse_payload(text: str) -> str:
    try:
        json.loads(text)
    except ValueError as exc:
        raise fail(f"payload is not valid JSON: {exc}", 2) from None
    return text


def duration_option(value: str | None, name: str) -> Any:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise fail(f"{name}: {exc}", 2) from None


# --- jobs ----------------------------------------------------------------------------------


@app.command()
def submit(
    type: Annotated[str, typer.Argument(help="Task type, e.g. echo.")],
    payload: Annotated[str, typer.Argument(help="JSON payload.")] = "null",
    queue: Annotated[
        str,
        typer.Option(
            "--queue",
            "-q",
            help="Queue (default: the one a live worker registered the type on, else default).",
        ),
    ] = "",
    priority: Annotated[int, typer.Option(help="-100..100, higher first.")] = 0,
    delay: Annotated[str | None, typer.Option(help="Run after this long, e.g. 10m.")] = None,
    max_attempts: Annotated[int, typer.Option(help="0: the queue's default.")] = 0,
    timeout: Annotated[str | None, typer.Option(help="Per-attempt limit, e.g. 30s.")] = None,
    ttl: Annotated[str | None, typer.Option(help="Expire if not started within this.")] = None,
    idempotency_key: Annotated[str, typer.Option(help="Same key, same job.")] = "",
    rate_key: Annotated[str, typer.Option(help="Share the queue's per-key rate.")] = "",
    concurrency_key: Annotated[
        str, typer.Option(help="Share the queue's per-key concurrency cap.")
    ] = "",
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Follow it to the end.")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Submit one job."""
    options = {
        "queue": queue,
        "priority": priority,
        "max_attempts": max_attempts,
        "idempotency_key": idempotency_key,
        "rate_key": rate_key,
        "concurrency_key": concurrency_key,
        "payload_json": parse_payload(payload),
        "delay": duration_option(delay, "--delay"),
        "timeout": duration_option(timeout, "--timeout"),
        "ttl": duration_option(ttl, "--ttl"),
    }
    submitted = run(lambda c: c.submit_ex(type, None, **options))
    for warning in submitted.warnings:
        warn(warning)
    if json_out:
        render.emit_json(
            {
                "job": submitted.job,
                "created": submitted.created,
                "warnings": list(submitted.warnings),
            }
        )
    else:
        note = "" if submitted.created else " (existing job for this idempotency key)"
        render.out.print(f"submitted {submitted.job.id} to {submitted.job.queue}{note}")
    if watch:
        _watch(submitted.job.id, json_out)


@app.command("submit-many")
def submit_many(
    file: Annotated[str, typer.Argument(help="JSON lines file, '-' for stdin.")] = "-",
    queue: Annotated[
        str, typer.Option("--queue", "-q", help="Default queue for lines without one.")
    ] = "",
    batch: Annotated[int, typer.Option(help="Jobs per SubmitBatch call.")] = 500,
    json_out: JsonFlag = False,
) -> None:
    """Submit many jobs: one JSON object per line, e.g. {"type": "echo", "payload": {...}}."""
    specs = list(_read_lines(file, queue))
    progress = Progress(
        transient=True, disable=json_out or not sys.stderr.isatty(), console=render.err
    )

    async def work(client: AsyncClient) -> list[Any]:
        with progress:
            bar = progress.add_task("submitting", total=len(specs))
            return await client.submit_many(
                specs, chunk=batch, on_progress=lambda n: progress.advance(bar, n)
            )

    results = run(work)
    for warning in sorted({w for r in results for w in r.warnings}):
        warn(warning)
    created = sum(r.created for r in results)
    if json_out:
        render.emit_json(
            {"submitted": len(results), "created": created, "ids": [r.job.id for r in results]}
        )
    else:
        render.out.print(
            f"submitted {len(results)} jobs ({created} new, "
            f"{len(results) - created} matched idempotency keys)"
        )


def _read_lines(file: str, queue: str) -> Iterator[dict[str, Any]]:
    stream = sys.stdin if file == "-" else None
    try:
        lines = stream.readlines() if stream else Path(file).read_text().splitlines()
    except OSError as exc:
        raise fail(f"cannot read {file}: {exc}", 2) from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            spec = json.loads(line)
        except ValueError as exc:
            raise fail(f"line {number}: not valid JSON: {exc}", 2) from None
        if not isinstance(spec, dict) or "type" not in spec:
            raise fail(f'line {number}: expected an object with a "type"', 2)
        if queue:
            spec.setdefault("queue", queue)
        yield spec


@app.command()
def get(job_id: str, json_out: JsonFlag = False) -> None:
    """Show one job."""
    job = run(lambda c: c.get(job_id))
    render.emit_json(job) if json_out else render.job_detail(job)


@app.command("list")
def list_jobs(
    queue: Queue = "",
    state_: Annotated[list[str] | None, typer.Option("--state", help="Repeat for several.")] = None,
    type: Annotated[str, typer.Option("--type", help="Task type.")] = "",
    limit: Annotated[int, typer.Option(help="Jobs per page.")] = 50,
    page_token: Annotated[str, typer.Option(help="From a previous page.")] = "",
    all_pages: Annotated[bool, typer.Option("--all", help="Follow every page.")] = False,
    json_out: JsonFlag = False,
) -> None:
    """List jobs, newest first."""
    try:
        states = [JobState(s.lower()) for s in state_ or []]
    except ValueError:
        raise fail(f"--state: one of {', '.join(s.value for s in JobState)}", 2) from None

    async def work(client: AsyncClient) -> tuple[list[Any], str]:
        jobs, token = [], page_token
        while True:
            page = await client.list(
                queue=queue, states=states, type=type, page_size=limit, page_token=token
            )
            jobs.extend(page.jobs)
            token = page.next_page_token
            if not all_pages or not token:
                return jobs, token

    jobs, token = run(work)
    if json_out:
        render.emit_json({"jobs": jobs, "next_page_token": token})
        return
    render.jobs_table(jobs)
    if token:
        render.out.print(f"more: --page-token {token}")


@app.command()
def cancel(
    job_id: str,
    reason: Annotated[str, typer.Option(help="Recorded with the job's events.")] = "",
    json_out: JsonFlag = False,
) -> None:
    """Cancel a job: at once if pending, on the worker's next heartbeat if running."""
    job = run(lambda c: c.cancel(job_id, reason))
    if json_out:
        render.emit_json(job)
    elif job.state is JobState.CANCELLED:
        render.out.print(f"cancelled {job.id}")
    else:
        render.out.print(f"cancellation requested for {job.id}; its worker stops it next heartbeat")


@app.command()
def watch(job_id: str, json_out: JsonFlag = False) -> None:
    """Follow a job's state and progress until it finishes."""
    _watch(job_id, json_out)


def _watch(job_id: str, json_out: bool) -> None:
    async def work(client: AsyncClient) -> JobState:
        final = JobState.QUEUED
        async for job in client.watch(job_id):
            final = job.state
            if json_out:
                render.emit_json(job)
                continue
            line = f"{job.id} {job.state.value}"
            if job.progress and job.state is JobState.RUNNING:
                line += f" {job.progress:.0%} {job.progress_message}".rstrip()
            if job.state is JobState.SUCCEEDED:
                line += f" result={render.value_text(job.result)}"
            if job.last_error and job.state in (JobState.DEAD, JobState.SCHEDULED):
                line += f" error={job.last_error}"
            render.out.print(line, markup=False)
        return final

    final = run(work)
    if final in TERMINAL_STATES and final is not JobState.SUCCEEDED:
        raise typer.Exit(1)


@app.command()
def stats(json_out: JsonFlag = False) -> None:
    """Cluster-wide counts: jobs by state, queues, active workers, outbox backlog."""
    data = run(lambda c: c.cluster_stats())
    render.emit_json(data) if json_out else render.cluster_table(data)


# --- queues --------------------------------------------------------------------------------


def _queue_settings(
    weight: int | None,
    max_attempts: int | None,
    lease_timeout: str | None,
    backoff_base: str | None,
    backoff_max: str | None,
    ttl: str | None,
    concurrency: int | None,
    retention: str | None,
    limits: dict[str, float | int | None] | None = None,
) -> dict[str, Any]:
    values = {
        **(limits or {}),
        "weight": weight,
        "max_attempts": max_attempts,
        "concurrency_limit": concurrency,
        "lease_timeout": duration_option(lease_timeout, "--lease-timeout"),
        "backoff_base": duration_option(backoff_base, "--backoff-base"),
        "backoff_max": duration_option(backoff_max, "--backoff-max"),
        "default_ttl": duration_option(ttl, "--ttl"),
        "retention": duration_option(retention, "--retention"),
    }
    return {k: v for k, v in values.items() if v is not None}


QueueWeight = Annotated[int | None, typer.Option(help="Share of leases, 1..1000.")]
QueueAttempts = Annotated[int | None, typer.Option(help="Default max attempts.")]
QueueLease = Annotated[str | None, typer.Option(help="Lease timeout, e.g. 30s.")]
QueueBackoffBase = Annotated[str | None, typer.Option(help="First retry delay ceiling.")]
QueueBackoffMax = Annotated[str | None, typer.Option(help="Largest retry delay.")]
QueueTtl = Annotated[str | None, typer.Option(help="Default job TTL.")]
QueueConcurrency = Annotated[int | None, typer.Option(help="Running jobs at once, 0: no limit.")]
QueueRetention = Annotated[str | None, typer.Option(help="Keep finished jobs this long.")]
QueueRate = Annotated[float | None, typer.Option(help="Jobs started per second, 0: no limit.")]
QueueBurst = Annotated[int | None, typer.Option(help="Started at once after a lull, 0: one.")]
QueueKeyRate = Annotated[
    float | None, typer.Option(help="Jobs started per second per rate key, 0: no limit.")
]
QueueKeyBurst = Annotated[int | None, typer.Option(help="Burst per rate key, 0: one.")]
QueueKeyConcurrency = Annotated[
    int | None, typer.Option(help="Running jobs per concurrency key, 0: no limit.")
]


def _limits(
    rate: float | None,
    burst: int | None,
    key_rate: float | None,
    key_burst: int | None,
    key_concurrency: int | None,
) -> dict[str, float | int | None]:
    return {
        "rate_limit": rate,
        "rate_burst": burst,
        "key_rate_limit": key_rate,
        "key_rate_burst": key_burst,
        "key_concurrency_limit": key_concurrency,
    }


TenantOption = Annotated[
    str,
    typer.Option(
        "--tenant",
        help="Whose queue: only a caller that sees every tenant names another (default: its own).",
    ),
]


@queues_app.command("create")
def queues_create(
    name: str,
    weight: QueueWeight = None,
    max_attempts: QueueAttempts = None,
    lease_timeout: QueueLease = None,
    backoff_base: QueueBackoffBase = None,
    backoff_max: QueueBackoffMax = None,
    ttl: QueueTtl = None,
    concurrency: QueueConcurrency = None,
    retention: QueueRetention = None,
    rate: QueueRate = None,
    burst: QueueBurst = None,
    key_rate: QueueKeyRate = None,
    key_burst: QueueKeyBurst = None,
    key_concurrency: QueueKeyConcurrency = None,
    tenant: TenantOption = "",
    json_out: JsonFlag = False,
) -> None:
    """Create a queue (queues are also created on first submit, with defaults)."""
    settings = _queue_settings(
        weight, max_attempts, lease_timeout, backoff_base, backoff_max, ttl, concurrency,
        retention, _limits(rate, burst, key_rate, key_burst, key_concurrency),
    )  # fmt: skip
    if tenant:
        settings["tenant"] = tenant
    queue = run(lambda c: c.create_queue(name, **settings))
    render.emit_json(queue) if json_out else render.queues_table([queue])


@queues_app.command("update")
def queues_update(
    name: str,
    weight: QueueWeight = None,
    max_attempts: QueueAttempts = None,
    lease_timeout: QueueLease = None,
    backoff_base: QueueBackoffBase = None,
    backoff_max: QueueBackoffMax = None,
    ttl: QueueTtl = None,
    concurrency: QueueConcurrency = None,
    retention: QueueRetention = None,
    rate: QueueRate = None,
    burst: QueueBurst = None,
    key_rate: QueueKeyRate = None,
    key_burst: QueueKeyBurst = None,
    key_concurrency: QueueKeyConcurrency = None,
    tenant: TenantOption = "",
    json_out: JsonFlag = False,
) -> None:
    """Change a queue's settings; only the options given change."""
    changes = _queue_settings(
        weight, max_attempts, lease_timeout, backoff_base, backoff_max, ttl, concurrency,
        retention, _limits(rate, burst, key_rate, key_burst, key_concurrency),
    )  # fmt: skip
    if not changes:
        raise fail("name at least one setting to change", 2)
    queue = run(lambda c: c.update_queue(name, tenant=tenant, **changes))
    render.emit_json(queue) if json_out else render.queues_table([queue])


@queues_app.command("list")
def queues_list(json_out: JsonFlag = False) -> None:
    """List queues and their settings."""
    queues = run(lambda c: c.list_queues())
    render.emit_json(queues) if json_out else render.queues_table(queues)


@queues_app.command("pause")
def queues_pause(name: str, tenant: TenantOption = "", json_out: JsonFlag = False) -> None:
    """Stop leasing from a queue; submits still land."""
    queue = run(lambda c: c.pause_queue(name, tenant))
    render.emit_json(queue) if json_out else render.out.print(f"paused {name}")


@queues_app.command("resume")
def queues_resume(name: str, tenant: TenantOption = "", json_out: JsonFlag = False) -> None:
    """Lease from a paused queue again."""
    queue = run(lambda c: c.resume_queue(name, tenant))
    render.emit_json(queue) if json_out else render.out.print(f"resumed {name}")


@queues_app.command("purge")
def queues_purge(
    name: str,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    tenant: TenantOption = "",
    json_out: JsonFlag = False,
) -> None:
    """Cancel every job of a queue that has not started."""
    confirm(f"Cancel every pending job in {name}?", yes)
    count = run(lambda c: c.purge_queue(name, tenant))
    if json_out:
        render.emit_json({"queue": name, "cancelled": count})
    else:
        render.out.print(f"cancelled {count} pending jobs in {name}")


@queues_app.command("stats")
def queues_stats(
    name: Annotated[str, typer.Argument()] = "",
    tenant: Annotated[str, typer.Option("--tenant", help="Only this tenant's queues.")] = "",
    json_out: JsonFlag = False,
) -> None:
    """Jobs per state for one queue or all."""
    result = run(lambda c: c.queue_stats(name, tenant))
    render.emit_json(result) if json_out else render.stats_table(result)


# --- workers -------------------------------------------------------------------------------


@workers_app.command("list")
def workers_list(json_out: JsonFlag = False) -> None:
    """Workers, their state and load."""
    workers = run(lambda c: c.list_workers())
    render.emit_json(workers) if json_out else render.workers_table(workers)


@workers_app.command("drain")
def workers_drain(worker_id: str, json_out: JsonFlag = False) -> None:
    """Ask a worker to finish its jobs, lease no more, and exit."""
    worker = run(lambda c: c.drain_worker(worker_id))
    render.emit_json(worker) if json_out else render.out.print(f"draining {worker_id}")


# --- dead letters --------------------------------------------------------------------------


@dlq_app.command("list")
def dlq_list(
    queue: Queue = "",
    limit: Annotated[int, typer.Option(help="Jobs per page.")] = 50,
    page_token: Annotated[str, typer.Option(help="From a previous page.")] = "",
    json_out: JsonFlag = False,
) -> None:
    """Dead-lettered jobs, newest first."""
    page = run(lambda c: c.list_dead(queue, page_size=limit, page_token=page_token))
    if json_out:
        render.emit_json({"jobs": page.jobs, "next_page_token": page.next_page_token})
        return
    render.jobs_table(page.jobs, title="dead letters")
    if page.next_page_token:
        render.out.print(f"more: --page-token {page.next_page_token}")


def _selector(queue: str, ids: list[str] | None) -> tuple[str, list[str]]:
    if not queue and not ids:
        raise fail("give --queue or job ids", 2)
    return queue, ids or []


@dlq_app.command("replay")
def dlq_replay(
    ids: Annotated[
        list[str] | None, typer.Argument(help="Job ids (default: all in --queue).")
    ] = None,
    queue: Queue = "",
    json_out: JsonFlag = False,
) -> None:
    """Put dead jobs back in their queue with a fresh attempt budget."""
    q, job_ids = _selector(queue, ids)
    count = run(lambda c: c.replay_dead(q, job_ids))
    render.emit_json({"replayed": count}) if json_out else render.out.print(f"replayed {count}")


@dlq_app.command("discard")
def dlq_discard(
    ids: Annotated[
        list[str] | None, typer.Argument(help="Job ids (default: all in --queue).")
    ] = None,
    queue: Queue = "",
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Delete dead jobs for good."""
    q, job_ids = _selector(queue, ids)
    what = f"{len(job_ids)} dead jobs" if job_ids else f"every dead job in {q}"
    confirm(f"Delete {what} for good?", yes)
    count = run(lambda c: c.discard_dead(q, job_ids))
    render.emit_json({"discarded": count}) if json_out else render.out.print(f"discarded {count}")


# --- API keys ------------------------------------------------------------------------------

Roles = Annotated[
    list[str],
    typer.Option("--role", "-r", help="submitter, worker, operator, admin or viewer; repeat."),
]
KeyQueues = Annotated[
    list[str] | None, typer.Option("--queue", "-q", help="Worker keys: a queue it may serve.")
]


def _roles(values: list[str]) -> list[Role]:
    try:
        return [Role(v) for v in values]
    except ValueError:
        raise fail(f"--role: one of {', '.join(r.value for r in Role)}", 2) from None


@keys_app.command("create")
def keys_create(
    roles: Roles,
    tenant: Annotated[str, typer.Option(help="Whose data it reaches ('*': every tenant).")] = "",
    queues: KeyQueues = None,
    expires: Annotated[str | None, typer.Option(help="Lifetime, e.g. 90d.")] = None,
    description: Annotated[str, typer.Option(help="Who or what it is for.")] = "",
    json_out: JsonFlag = False,
) -> None:
    """Create a key and print it once: it is stored only as a hash."""
    lifetime = duration_option(expires, "--expires")
    key, secret = run(
        lambda c: c.create_api_key(
            [r.value for r in _roles(roles)],
            tenant=tenant,
            queues=queues or [],
            description=description,
            expires_in=lifetime,
        )
    )
    if json_out:
        render.emit_json({"key": key, "secret_key": secret})
        return
    print(secret)
    print(
        f"key {key.id} for tenant {key.tenant}: roles {', '.join(key.roles)}; "
        "shown only now, store it safely",
        file=sys.stderr,
    )


@keys_app.command("list")
def keys_list(
    tenant: Annotated[str, typer.Option(help="One tenant (default: all you manage).")] = "",
    json_out: JsonFlag = False,
) -> None:
    """Keys without their secrets: id, tenant, roles, queues, times."""
    keys = run(lambda c: c.list_api_keys(tenant))
    render.emit_json(keys) if json_out else render.keys_table(keys)


@keys_app.command("revoke")
def keys_revoke(
    key_id: str,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Revoke a key: refused from the next call on, on every server."""
    confirm(f"Revoke API key {key_id}?", yes)
    key = run(lambda c: c.revoke_api_key(key_id))
    render.emit_json(key) if json_out else render.out.print(f"revoked {key.id}")


@keys_app.command("bootstrap")
def keys_bootstrap(
    roles: Roles,
    tenant: Annotated[str, typer.Option(help="Whose data it reaches ('*': every tenant).")] = "*",
    queues: KeyQueues = None,
) -> None:
    """Make a key offline (no server): the key on stdout, and on stderr its hash-only entry
    for JQ_AUTH_BOOTSTRAP_KEYS, so the server's setting never holds the secret."""
    granted = _roles(roles)
    _, _, key = new_key()
    print(key)
    print(bootstrap_entry(key, tenant, granted, queues or []), file=sys.stderr)


# What --help shows for each value, instead of the Python type (`<str>`); flags show none.
PLACEHOLDERS = {
    "server": "HOST:PORT",
    "token": "KEY",
    "type": "TASK",
    "payload": "JSON",
    "queue": "QUEUE",
    "name": "QUEUE",
    "priority": "N",
    "max_attempts": "N",
    "limit": "N",
    "batch": "N",
    "weight": "N",
    "concurrency_limit": "N",
    "rate": "PER_SECOND",
    "key_rate": "PER_SECOND",
    "burst": "N",
    "key_burst": "N",
    "key_concurrency": "N",
    "rate_key": "KEY",
    "concurrency_key": "KEY",
    "delay": "DURATION",
    "timeout": "DURATION",
    "ttl": "DURATION",
    "idempotency_key": "KEY",
    "page_token": "TOKEN",
    "state_": "STATE",
    "file": "FILE",
    "job_id": "JOB_ID",
    "ids": "JOB_ID...",
    "worker_id": "WORKER_ID",
    "key_id": "KEY_ID",
    "tenant": "TENANT",
    "reason": "TEXT",
    "roles": "ROLE",
    "queues": "QUEUE",
    "description": "TEXT",
    "expires": "DURATION",
}


def _placeholders(command: Any) -> None:
    for param in getattr(command, "params", []):
        if getattr(param, "is_flag", False):
            shown = None
        else:
            shown = PLACEHOLDERS.get(param.name, (param.name or "value").upper())
        param.display_type_rich = lambda ctx, shown=shown: shown
    made = getattr(command, "get_help_option", None)
    if made is not None:  # --help is made per call, so it is patched as it is made

        def help_option(ctx: Any, made: Any = made) -> Any:
            option = made(ctx)
            if option is not None:
                option.display_type_rich = lambda ctx: None
            return option

        command.get_help_option = help_option
    for sub in getattr(command, "commands", {}).values():
        _placeholders(sub)


def build_command() -> Any:
    command = typer.main.get_command(app)
    _placeholders(command)
    return command


def main() -> None:
    build_command()()


if __name__ == "__main__":
    main()
