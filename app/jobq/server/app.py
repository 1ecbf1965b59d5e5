"""The composition root: settings in, a running jq-server out."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import signal
import socket
from collections.abc import Sequence
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.sdk.trace import TracerProvider

from jobq.config import ServerSettings, sqlite_path
from jobq.core.clock import Clock, SystemClock
from jobq.core.errors import JobqError
from jobq.events.relay import build_relay
from jobq.observability.http import HttpSidePort, build_http_app
from jobq.observability.metrics import ServerMetrics
from jobq.observability.tracing import build_tracer_provider, tracer_from
from jobq.server.admin_service import AdminServicer
from jobq.server.authn import AuthInterceptor, build_authenticator
from jobq.server.console import add_console
from jobq.server.coordination import Coordination
from jobq.server.guard import RequestGuard
from jobq.server.instrumented_store import InstrumentedStore
from jobq.server.interceptors import RpcInterceptor
from jobq.server.job_service import JobServicer
from jobq.server.keys import KeyService
from jobq.server.rpc_context import ServerInterceptor
from jobq.server.schedule_service import ScheduleServicer
from jobq.server.scheduler import Scheduler
from jobq.server.schedules import ScheduleService
from jobq.server.service import (
    JobqService,
    in_process_coordination,
    limits_from,
    queue_defaults,
)
from jobq.server.tls import ReloadingCertificates
from jobq.server.worker_service import WorkerServicer
from jobq.server.workflow_service import WorkflowServicer
from jobq.server.workflows import WorkflowService
from jobq.store.base import Store
from jobq.v1 import (
    admin_service_pb2,
    admin_service_pb2_grpc,
    job_service_pb2,
    job_service_pb2_grpc,
    schedule_service_pb2,
    schedule_service_pb2_grpc,
    worker_service_pb2,
    worker_service_pb2_grpc,
    workflow_service_pb2,
    workflow_service_pb2_grpc,
)

log = logging.getLogger("jobq.server")

HEALTH_EVERY = 2.0  # seconds between readiness checks that drive the gRPC health status
PENDING_WAIT = 2.0  # seconds readiness waits for the migration tool to count pending ones

SERVICE_NAMES = (
    job_service_pb2.DESCRIPTOR.services_by_name["JobService"].full_name,
    worker_service_pb2.DESCRIPTOR.services_by_name["WorkerService"].full_name,
    admin_service_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name,
    schedule_service_pb2.DESCRIPTOR.services_by_name["ScheduleService"].full_name,
    workflow_service_pb2.DESCRIPTOR.services_by_name["WorkflowService"].full_name,
)


def build_store(settings: ServerSettings) -> Store:
    """The store named by JQ_DATABASE_URL; its driver is imported only when chosen."""
    url = settings.database_url
    if url.startswith("sqlite:///"):
        from jobq.store.sqlite import SqliteStore

        return SqliteStore(
            sqlite_path(url), queue_defaults(settings), migrations_root=settings.migrations_dir
        )
    if url.startswith(("postgresql://", "postgres://")):
        from jobq.store.postgres import PostgresStore
        from jobq.store.postgres.credentials import build_credentials

        return PostgresStore(
            url,
            queue_defaults(settings),
            direct_url=settings.database_direct_url or None,
            migrations_root=settings.migrations_dir,
            pool_min=settings.database_pool_min,
            pool_max=settings.database_pool_max,
            acquire_timeout=settings.database_pool_timeout.total_seconds(),
            credentials=build_credentials(
                settings.database_secret_arn or None, settings.aws_region or None
            ),
        )
    scheme = url.split(":", 1)[0]
    raise JobqError(
        f"JQ_DATABASE_URL: unsupported scheme {scheme!r} (use sqlite:///path or postgresql://)"
    )


def build_coordination(settings: ServerSettings, metrics: ServerMetrics) -> Coordination:
    """Redis when JQ_REDIS_URL is set (a cluster when its scheme or JQ_REDIS_CLUSTER says
    so), else the in-process adapter; the driver is imported only when chosen."""
    if not settings.redis_url:
        return in_process_coordination(settings, metrics)
    from jobq.coord.guard import GuardedCoordinator
    from jobq.coord.redis import RedisCoordinator, SecretCredentialProvider

    provider = None
    if settings.redis_auth_secret_arn:
        from jobq.store.postgres.credentials import build_credentials

        provider = SecretCredentialProvider(
            build_credentials(settings.redis_auth_secret_arn, settings.aws_region or None)
        )
    backend = RedisCoordinator.build(
        settings.redis_url,
        cluster=settings.redis_cluster,
        credential_provider=provider,
        timeout=settings.redis_timeout.total_seconds(),
    )
    guarded = GuardedCoordinator(backend, metrics, shared=True)
    return Coordination(guarded, metrics, settings.status_cache_ttl)


def keepalive_options(settings: ServerSettings) -> list[tuple[str, int]]:
    """gRPC core's names for the keepalive settings: half-open and idle connections close."""

    def ms(value: dt.timedelta) -> int:
        return int(value.total_seconds() * 1000)

    return [
        ("grpc.keepalive_time_ms", ms(settings.grpc_keepalive_time)),
        ("grpc.keepalive_timeout_ms", ms(settings.grpc_keepalive_timeout)),
        # This grpcio waits for a keepalive ping's answer for ping_timeout (a minute by
        # default), not keepalive_timeout: without it a half-open peer is found that late.
        ("grpc.http2.ping_timeout_ms", ms(settings.grpc_keepalive_timeout)),
        ("grpc.keepalive_permit_without_calls", int(settings.grpc_keepalive_permit_without_calls)),
        ("grpc.max_connection_idle_ms", ms(settings.grpc_max_connection_idle)),
        # The policy for clients' pings: as often as this, and without calls if permitted;
        # more often is answered with GOAWAY (too_many_pings).
        (
            "grpc.http2.min_recv_ping_interval_without_data_ms",
            ms(settings.grpc_client_ping_min_interval),
        ),
        ("grpc.http2.max_ping_strikes", 2),
    ]


def _listen(
    server: grpc.aio.Server,
    host: str,
    port: int,
    credentials: grpc.ServerCredentials | None = None,
) -> int:
    """Bind the gRPC port, or raise one line naming the setting that moves it."""
    address = f"{host}:{port}"
    # Asked first, so that the cause is ours in one line rather than gRPC core's log.
    problem = _bind_error(host, port) if port else None
    if problem:
        raise OSError(
            f"cannot listen for gRPC on {address}: {problem} "
            "(set JQ_GRPC_PORT to a free port, or JQ_GRPC_HOST)"
        )
    try:
        if credentials is None:
            bound = server.add_insecure_port(address)
        else:
            bound = server.add_secure_port(address, credentials)
    except RuntimeError:  # grpcio says only "Failed to bind"; the OS says why
        bound = 0
    if bound == 0:
        raise OSError(
            f"cannot listen for gRPC on {address}: {_bind_error(host, port) or 'refused'} "
            "(set JQ_GRPC_PORT to a free port, or JQ_GRPC_HOST)"
        )
    return bound


def _bind_error(host: str, port: int) -> str | None:
    """Why binding host:port fails, or None; SO_REUSEADDR as gRPC sets it (TIME_WAIT is fine)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, kind, proto, _, sockaddr = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(sockaddr)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def db_system(url: str) -> str:
    """The OpenTelemetry `db.system.name` of a JQ_DATABASE_URL."""
    return "postgresql" if url.startswith(("postgresql://", "postgres://")) else "sqlite"


class ServerApp:
    """A jq-server: gRPC services, health, reflection, the HTTP side port and the scheduler."""

    def __init__(
        self,
        settings: ServerSettings,
        store: Store | None = None,
        clock: Clock | None = None,
        tracer_provider: TracerProvider | None = None,
        interceptors: Sequence[ServerInterceptor] = (),
    ) -> None:
        """`interceptors`: run inside the server's own, closest to the servicers (a test's
        stand-in for authentication)."""
        self.settings = settings
        self._extra_interceptors = tuple(interceptors)
        self.store = store or build_store(settings)
        self.metrics = ServerMetrics()
        # A provider passed in belongs to the caller (a test's in-memory exporter); one built
        # here is flushed and shut down with the server.
        self._owns_tracing = tracer_provider is None
        self.tracer_provider = tracer_provider or build_tracer_provider(
            "jq-server", settings.otlp_endpoint, sample_ratio=settings.trace_sample_ratio
        )
        self.tracer = tracer_from(self.tracer_provider)
        instrumented = InstrumentedStore(
            self.store, self.metrics, self.tracer, db_system(settings.database_url)
        )
        self.service = JobqService(
            instrumented,
            clock or SystemClock(),
            settings,
            self.metrics,
            coordination=build_coordination(settings, self.metrics),
        )
        self.keys = KeyService(instrumented.api_keys, self.service.clock)
        self.authenticator = build_authenticator(settings, instrumented.api_keys)
        self.certificates = (
            ReloadingCertificates(
                settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file
            )
            if settings.tls_cert_file
            else None
        )
        self.schedules = ScheduleService(self.service)
        self.scheduler = Scheduler(self.service, self.schedules)
        self.workflows = WorkflowService(self.service)
        # None without JQ_KAFKA_BOOTSTRAP_SERVERS: events then stay in the outbox (up to
        # JQ_OUTBOX_RETENTION), and jq_outbox_relay_enabled says nobody is sending them.
        self.relay = build_relay(
            settings,
            self.store,
            self.service.clock,
            self.metrics.registry,
            crash_after_produce=settings.test_fault == "relay-crash-after-produce",
        )
        self.metrics.set_relay_enabled(self.relay is not None)
        if settings.test_fault:
            log.warning(
                "JQ_TEST_FAULT=%s is set: this server will crash on purpose", settings.test_fault
            )
        # grpc-stubs declares only the sync health servicer; grpcio-health-checking has this one.
        self.health = health.aio.HealthServicer()  # type: ignore[attr-defined]
        self.grpc_port = 0
        self.http_port = 0
        self._draining = False
        self._migrated = False
        self._server: grpc.aio.Server | None = None
        self._http: HttpSidePort | None = None
        self._listener: asyncio.Task[None] | None = None
        self._changes: asyncio.Task[None] | None = None
        self._health_watch: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start everything, or stop what had started and raise one line saying why not."""
        try:
            await self._start()
        except BaseException:
            # A half-started server (the store's thread, gRPC's) would keep the process
            # alive after the error; undo what started so the cause is the last word.
            with contextlib.suppress(Exception):
                await self.stop()
            raise

    async def _start(self) -> None:
        if self.settings.migrate_on_start:
            await self.store.migrate()
        await self.store.open()
        await self._check_credentials()
        interceptor = RpcInterceptor(
            self.metrics,
            self.tracer,
            stream_send_timeout=self.settings.stream_send_timeout.total_seconds(),
        )
        server = grpc.aio.server(
            # The guard runs inside RpcInterceptor, which maps its rejections to a status.
            # Authentication first: nothing of a call runs before its principal is known.
            interceptors=[
                AuthInterceptor(self.authenticator, self.service.clock),
                interceptor,
                RequestGuard(limits_from(self.settings)),
                *self._extra_interceptors,
            ],
            options=[
                ("grpc.so_reuseport", 0),
                ("grpc.max_receive_message_length", self.settings.receive_limit()),
                *keepalive_options(self.settings),
            ],
        )
        job_service_pb2_grpc.add_JobServiceServicer_to_server(JobServicer(self.service), server)
        worker_service_pb2_grpc.add_WorkerServiceServicer_to_server(
            WorkerServicer(self.service), server
        )
        admin_service_pb2_grpc.add_AdminServiceServicer_to_server(
            AdminServicer(self.service, self.keys), server
        )
        schedule_service_pb2_grpc.add_ScheduleServiceServicer_to_server(
            ScheduleServicer(self.schedules), server
        )
        workflow_service_pb2_grpc.add_WorkflowServiceServicer_to_server(
            WorkflowServicer(self.workflows), server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        credentials = (
            self.certificates.credentials(
                require_client_cert=bool(self.settings.tls_client_ca_file)
            )
            if self.certificates is not None
            else None
        )
        self.grpc_port = _listen(
            server, self.settings.grpc_host, self.settings.grpc_port, credentials
        )
        await server.start()
        self._server = server
        http_app = build_http_app(self.metrics.registry, self.readiness)
        add_console(
            http_app,
            self.service,
            self.schedules,
            self.workflows,
            self.authenticator,
            self.settings.console_secret,
        )
        self._http = HttpSidePort(
            http_app,
            self.settings.http_host,
            self.settings.http_port,
            setting="JQ_HTTP_PORT",
        )
        self.http_port = await self._http.start()
        self.scheduler.start()
        if self.relay is not None:
            self.relay.start()
        # Work made leasable by another replica (or the leader's scheduler) wakes this
        # replica's long-polls at once, not at their next periodic look.
        self._listener = asyncio.create_task(self.store.listen(self._woken_by_store))
        # Job changes made through other replicas wake this one's watchers (Redis pub/sub).
        self._changes = asyncio.create_task(
            self.service.coordination.follow_changes(self.service.notifier)
        )
        await self._set_health(health_pb2.HealthCheckResponse.SERVING)
        self._health_watch = asyncio.create_task(self._follow_readiness())
        log.info(
            "jq-server listening: gRPC on %s:%d, HTTP on http://%s:%d/ (console, metrics, readyz)",
            self.settings.grpc_host,
            self.grpc_port,
            self.settings.http_host,
            self.http_port,
            extra={"grpc_port": self.grpc_port, "http_port": self.http_port},
        )

    async def _check_credentials(self) -> None:
        """Deny by default: refuse to start with no way for any caller to authenticate."""
        if self.settings.auth_unauthenticated:
            log.warning(
                "JQ_AUTH_UNAUTHENTICATED=true: every call runs as an all-tenant principal with "
                "every role; for local development only"
            )
            return
        if self.settings.has_credentials():
            return
        now = self.service.clock.now()
        if any(key.usable(now) for key in await self.store.api_keys.all()):
            return
        raise JobqError(
            "no credentials configured: set JQ_AUTH_BOOTSTRAP_KEYS (or JQ_AUTH_JWT_JWKS, or "
            "JQ_AUTH_MTLS_SUBJECTS), or JQ_AUTH_UNAUTHENTICATED=true for local development only"
        )

    def _woken_by_store(self) -> None:
        self.metrics.store_wakeups.inc()
        self.service.notifier.work_available()

    async def readiness(self) -> str | None:
        """None when ready to serve; otherwise the reason, for /readyz and gRPC health."""
        if self._draining:
            return "draining"
        problem = None
        try:
            await self.store.ping()  # a write: a store that only reads is not ready
        except (JobqError, OSError) as exc:
            problem = f"store unavailable: {exc}"
        if not self._migrated:
            # Also after a failed ping: a table the probe needs may be a migration not applied.
            try:
                pending = await asyncio.wait_for(self.store.migrations_pending(), PENDING_WAIT)
            except Exception as exc:  # the migration tool's driver errors come unwrapped
                return problem or f"store unavailable: {type(exc).__name__}: {exc}"
            if pending:
                return f"{pending} migrations not applied (run jq-server migrate)"
            self._migrated = problem is None
        return problem

    async def _follow_readiness(self) -> None:
        """gRPC health says what /readyz says: NOT_SERVING while the store is unreachable."""
        serving = True
        while True:
            await asyncio.sleep(HEALTH_EVERY)
            ready = await self.readiness() is None
            if ready != serving:
                serving = ready
                await self._set_health(
                    health_pb2.HealthCheckResponse.SERVING
                    if ready
                    else health_pb2.HealthCheckResponse.NOT_SERVING
                )

    async def _set_health(self, status: Any) -> None:
        for name in ("", *SERVICE_NAMES):
            await self.health.set(name, status)

    async def stop(self) -> None:
        """Graceful: stop taking calls, let in-flight ones finish, then close the store."""
        self._draining = True
        if self._health_watch is not None:
            self._health_watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health_watch
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        if self._server is not None:
            await self._server.stop(self.settings.shutdown_grace.total_seconds())
        await self.scheduler.stop()
        if self.relay is not None:
            await self.relay.stop()
        for task in (self._listener, self._changes):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.service.coordination.close()
        if self._http is not None:
            await self._http.stop()
        await self.store.close()
        if self._owns_tracing and self.tracer_provider is not None:
            self.tracer_provider.shutdown()  # exports the spans still buffered
        log.info("jq-server stopped")


async def serve(settings: ServerSettings) -> None:
    app = ServerApp(settings)
    await app.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await app.stop()
