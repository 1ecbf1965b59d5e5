"""In-process pieces for integration tests: a traced server, a running Worker."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from jobq.config import ServerSettings
from jobq.observability.tracing import NO_TRACER, build_tracer_provider, tracer_from
from jobq.observability.worker_metrics import WorkerMetrics
from jobq.server.app import ServerApp
from jobq.worker.connection import WorkerConnection
from jobq.worker.runner import Worker, WorkerOptions
from jobq.worker.task import Task
from tests.auth_keys import BOOTSTRAP_KEYS, WORKER_KEY


class Spans:
    """A tracer provider whose finished spans land in memory, exported as each one ends."""

    def __init__(self, service: str, sample_ratio: float | None = None) -> None:
        self.exporter = InMemorySpanExporter()
        if sample_ratio is None:
            self.provider = TracerProvider(resource=Resource.create({"service.name": service}))
            self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        else:  # the provider a process builds for itself, with JQ_TRACE_SAMPLE_RATIO
            built = build_tracer_provider(
                service, exporter=self.exporter, sample_ratio=sample_ratio
            )
            assert built is not None
            self.provider = built
        self.tracer = tracer_from(self.provider)

    def finished(self) -> tuple[ReadableSpan, ...]:
        self.provider.force_flush()
        return self.exporter.get_finished_spans()

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.finished() if s.name == name]


def server_settings(tmp_path: Path, **overrides: Any) -> ServerSettings:
    values: dict[str, Any] = {
        "grpc_port": 0,
        "http_port": 0,
        "database_url": f"sqlite:///{tmp_path}/jobq.db",
        "scheduler_interval": dt.timedelta(milliseconds=50),
        "shutdown_grace": dt.timedelta(seconds=1),
        "auth_bootstrap_keys": BOOTSTRAP_KEYS,
    }
    return ServerSettings(**(values | overrides))


@contextlib.asynccontextmanager
async def running_server(
    tmp_path: Path, tracing: Spans | None = None, **overrides: Any
) -> AsyncIterator[ServerApp]:
    """A ServerApp on free ports; `overrides`: other settings (e.g. kafka_bootstrap_servers)."""
    provider = tracing.provider if tracing else None
    app = ServerApp(server_settings(tmp_path, **overrides), tracer_provider=provider)
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


@contextlib.asynccontextmanager
async def running_worker(
    server: ServerApp,
    tasks: Mapping[str, Task],
    *,
    tracing: Spans | None = None,
    metrics: WorkerMetrics | None = None,
) -> AsyncIterator[Worker]:
    """A Worker leasing from `server` until the block ends; then it drains and stops."""
    connection = WorkerConnection(f"127.0.0.1:{server.grpc_port}", token=WORKER_KEY)
    options = WorkerOptions(
        queues=sorted({t.queue for t in tasks.values()}),
        concurrency=4,
        lease_wait=dt.timedelta(milliseconds=200),
        grace_period=dt.timedelta(seconds=5),
    )
    tracer = tracing.tracer if tracing else NO_TRACER
    worker = Worker(connection, tasks, options, metrics, tracer)
    run = asyncio.create_task(worker.run())
    try:
        await asyncio.wait_for(worker.registered.wait(), 10)
        yield worker
    finally:
        worker.stop()
        await asyncio.wait_for(run, 15)
        await connection.close()
