"""jq-worker: run the tasks of the given modules against a jq-server."""

from __future__ import annotations

import asyncio
import importlib
import logging
import signal
import sys
from pathlib import Path

import typer

from jobq import eventloop
from jobq.config import ConfigError, WorkerSettings, load
from jobq.core.errors import PermissionDenied, Unauthenticated
from jobq.observability.http import HttpSidePort, build_http_app
from jobq.observability.logging import configure_logging
from jobq.observability.tracing import build_tracer_provider, tracer_from
from jobq.observability.worker_metrics import WorkerMetrics
from jobq.wire.channel import Tls
from jobq.worker.connection import WorkerConnection
from jobq.worker.runner import Worker, WorkerOptions
from jobq.worker.task import Task, collect_tasks

log = logging.getLogger("jobq.worker")


class TasksError(Exception):
    """A tasks module cannot be imported or holds no task; the message names the module."""


def load_tasks(modules: list[str]) -> dict[str, Task]:
    # Task modules are named relative to where the worker is started, like `python -m`.
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    imported = []
    for name in modules:
        try:
            imported.append(importlib.import_module(name))
        except Exception as exc:  # whatever the module raises while it is imported
            raise TasksError(
                f"cannot import tasks module {name!r} (JQ_TASKS or --tasks): "
                f"{type(exc).__name__}: {exc}"
            ) from exc
    try:
        return collect_tasks(imported)
    except ValueError as exc:
        raise TasksError(f"cannot load tasks from {', '.join(modules)}: {exc}") from exc


async def run_worker(settings: WorkerSettings, tasks: dict[str, Task], queues: list[str]) -> None:
    metrics = WorkerMetrics()
    tracer_provider = build_tracer_provider(
        "jq-worker", settings.otlp_endpoint, sample_ratio=settings.trace_sample_ratio
    )
    connection = WorkerConnection(
        settings.server_address, settings.token, tls=Tls.from_settings(settings)
    )
    worker = Worker(
        connection,
        tasks,
        WorkerOptions(
            queues=queues,
            concurrency=settings.concurrency,
            grace_period=settings.grace_period,
            lease_wait=settings.lease_wait,
            report_interval=settings.report_interval,
            worker_id=settings.worker_id,
        ),
        metrics,
        tracer_from(tracer_provider),
    )

    async def readiness() -> str | None:
        return None if worker.registered.is_set() else "not registered with the server yet"

    http = HttpSidePort(
        build_http_app(metrics.registry, readiness),
        settings.http_host,
        settings.http_port,
        setting="JQ_WORKER_HTTP_PORT",
    )
    try:
        port = await http.start()
    except OSError:
        await connection.close()
        if tracer_provider is not None:
            tracer_provider.shutdown()
        raise
    # What a new user checks first: which port it took (JQ_WORKER_HTTP_PORT=0 picks one) and
    # which tasks it serves, with their queues.
    log.info(
        "jq-worker: HTTP on http://%s:%d/ (metrics, readyz); server %s; queues %s; tasks %s",
        settings.http_host,
        port,
        settings.server_address,
        ",".join(queues),
        ", ".join(f"{t.name} ({t.queue})" for t in sorted(tasks.values(), key=lambda t: t.name)),
        extra={"http_port": port, "tasks": sorted(tasks)},
    )
    loop = asyncio.get_running_loop()
    signals = 0

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        log.info("stopping: finishing in-flight jobs" if signals == 1 else "stopping now")
        worker.stop(force=signals > 1)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    try:
        await worker.run()
    finally:
        await http.stop()
        await connection.close()
        if tracer_provider is not None:
            tracer_provider.shutdown()  # exports the spans still buffered


def main_command(
    tasks: str = typer.Option(
        "", "--tasks", help="Comma-separated modules whose @task functions to run (JQ_TASKS)."
    ),
    queues: str = typer.Option(
        "", "--queues", help="Comma-separated queues (default: JQ_QUEUES, else the tasks' queues)."
    ),
    concurrency: int = typer.Option(
        0, "--concurrency", help="Jobs at once (default JQ_CONCURRENCY)."
    ),
    server: str = typer.Option("", "--server", help="host:port of jq-server (JQ_SERVER_ADDRESS)."),
) -> None:
    """Run a worker until SIGTERM; on SIGTERM finish in-flight jobs within JQ_GRACE_PERIOD."""
    overrides: dict[str, object] = {}
    if concurrency:
        overrides["concurrency"] = concurrency
    if server:
        overrides["server_address"] = server
    try:
        settings = load(WorkerSettings, **overrides)
    except ConfigError as exc:
        typer.echo(f"jq-worker: configuration error: {exc}", err=True)
        raise typer.Exit(2) from None
    configure_logging(settings.log_level, settings.log_format, "jq-worker")
    tasks = tasks or settings.tasks
    try:
        found = load_tasks([m.strip() for m in tasks.split(",") if m.strip()])
    except TasksError as exc:
        typer.echo(f"jq-worker: {_first_line(str(exc))}", err=True)
        raise typer.Exit(2) from None
    if not found:
        typer.echo(f"jq-worker: no @task functions in {tasks} (JQ_TASKS or --tasks)", err=True)
        raise typer.Exit(2)
    chosen = queues or settings.queues
    names = [q.strip() for q in chosen.split(",") if q.strip()] or sorted(
        {t.queue for t in found.values()}
    )
    try:
        eventloop.run(run_worker(settings, found, names), settings.event_loop)
    except OSError as exc:  # the side port: the message names the variable that moves it
        typer.echo(f"jq-worker: {_first_line(str(exc))}", err=True)
        raise typer.Exit(1) from None
    except (Unauthenticated, PermissionDenied) as exc:  # retrying would not change the answer
        typer.echo(
            f"jq-worker: refused by the server: {type(exc).__name__}: {_first_line(str(exc))} "
            "(check JQ_TOKEN or the client certificate)",
            err=True,
        )
        raise typer.Exit(1) from None


def _first_line(message: str) -> str:
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    return lines[0] if lines else "failed"


def main() -> None:
    typer.run(main_command)
