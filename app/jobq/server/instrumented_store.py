"""A Store that times, counts and traces every repository call of the one it wraps.

Instrumentation sits here, between the service and any adapter, so every backend gets
the same spans and `jq_db_query_duration_seconds{operation}` without touching its SQL.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Coroutine
from typing import Any, cast

from opentelemetry import trace

from jobq.core.errors import JobqError, StoreUnavailable
from jobq.observability.metrics import ServerMetrics
from jobq.observability.tracing import NO_TRACER
from jobq.store.base import (
    ApiKeyRepository,
    EventLog,
    JobRepository,
    LeaderLock,
    QueueRepository,
    ScheduleRepository,
    Store,
    WorkflowRepository,
)
from jobq.store.base import WorkerRepository as WorkerRepo

AsyncFn = Callable[..., Coroutine[Any, Any, Any]]


class _Instrumented:
    """Wraps each coroutine method of a repository; other attributes pass through."""

    def __init__(self, inner: object, prefix: str, probe: _Probe) -> None:
        self._inner = inner
        self._prefix = prefix
        self._probe = probe

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if not callable(value) or name.startswith("_"):
            return value
        wrapped = self._probe.wrap(f"{self._prefix}.{name}", value)
        setattr(self, name, wrapped)  # built once per method
        return wrapped


class _Probe:
    def __init__(self, metrics: ServerMetrics, tracer: trace.Tracer, db_system: str) -> None:
        self._metrics = metrics
        self._tracer = tracer
        self._db_system = db_system

    def wrap(self, operation: str, fn: AsyncFn) -> AsyncFn:
        duration = self._metrics.db_duration.labels(operation)

        @functools.wraps(fn)
        async def call(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            # Store calls are traced inside an RPC or a job; the scheduler's background loops
            # would otherwise start a new trace several times a second.
            if not trace.get_current_span().is_recording():
                try:
                    return await fn(*args, **kwargs)
                except Exception as exc:
                    self._count_failure(operation, exc)
                    raise
                finally:
                    duration.observe(time.perf_counter() - start)
            with self._tracer.start_as_current_span(
                operation,
                kind=trace.SpanKind.CLIENT,
                attributes={"db.system.name": self._db_system, "db.operation.name": operation},
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                try:
                    return await fn(*args, **kwargs)
                except Exception as exc:
                    if self._count_failure(operation, exc):
                        span.record_exception(exc)
                        span.set_status(trace.StatusCode.ERROR, type(exc).__name__)
                    raise
                finally:
                    duration.observe(time.perf_counter() - start)

        return call

    def _count_failure(self, operation: str, exc: Exception) -> bool:
        """Count a failure of the store itself; a domain answer (NotFound, StaleLease) is not."""
        if isinstance(exc, JobqError) and not isinstance(exc, StoreUnavailable):
            return False
        self._metrics.store_errors.labels(operation).inc()
        return True


class InstrumentedStore:
    """`Store` over another store; only the repositories are instrumented (not ping, open)."""

    def __init__(
        self,
        inner: Store,
        metrics: ServerMetrics,
        tracer: trace.Tracer = NO_TRACER,
        db_system: str = "",
    ) -> None:
        self.inner = inner
        probe = _Probe(metrics, tracer, db_system)
        self._jobs = cast(JobRepository, _Instrumented(inner.jobs, "jobs", probe))
        self._queues = cast(QueueRepository, _Instrumented(inner.queues, "queues", probe))
        self._workers = cast(WorkerRepo, _Instrumented(inner.workers, "workers", probe))
        self._events = cast(EventLog, _Instrumented(inner.events, "events", probe))
        self._api_keys = cast(ApiKeyRepository, _Instrumented(inner.api_keys, "api_keys", probe))
        self._schedules = cast(
            ScheduleRepository, _Instrumented(inner.schedules, "schedules", probe)
        )
        self._workflows = cast(
            WorkflowRepository, _Instrumented(inner.workflows, "workflows", probe)
        )

    @property
    def jobs(self) -> JobRepository:
        return self._jobs

    @property
    def queues(self) -> QueueRepository:
        return self._queues

    @property
    def workers(self) -> WorkerRepo:
        return self._workers

    @property
    def events(self) -> EventLog:
        return self._events

    @property
    def api_keys(self) -> ApiKeyRepository:
        return self._api_keys

    @property
    def schedules(self) -> ScheduleRepository:
        return self._schedules

    @property
    def workflows(self) -> WorkflowRepository:
        return self._workflows

    @property
    def leader(self) -> LeaderLock:
        return self.inner.leader

    async def listen(self, on_work: Callable[[], None]) -> None:
        await self.inner.listen(on_work)

    async def migrate(self) -> None:
        await self.inner.migrate()

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def ping(self) -> None:
        await self.inner.ping()

    async def migrations_pending(self) -> int:
        return await self.inner.migrations_pending()
