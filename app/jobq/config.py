"""Every setting, from environment variables with the JQ_ prefix, validated once at start."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import BeforeValidator, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from jobq.core import bounds
from jobq.core.durations import parse_duration
from jobq.core.errors import InvalidArgument
from jobq.eventloop import LoopName

Duration = Annotated[dt.timedelta, BeforeValidator(parse_duration)]

# What a job or an outcome carries besides its payload: every other field at its bound
# (jobq.core.bounds: trace context 16 KiB, the short strings, times) with room to spare.
JOB_OVERHEAD_BYTES = 32 << 10
REQUEST_OVERHEAD_BYTES = 64 << 10
RECEIVE_CAP_BYTES = 64 << 20


_TENANT_WEIGHT = r"[a-z0-9][a-z0-9._-]{0,62}=[1-9][0-9]{0,3}"
_TENANT_WEIGHTS = rf"^({_TENANT_WEIGHT}(,{_TENANT_WEIGHT})*)?$"
_TENANT_CAP = r"[a-z0-9][a-z0-9._-]{0,62}=[1-9][0-9]{0,5}"
_TENANT_CAPS = rf"^({_TENANT_CAP}(,{_TENANT_CAP})*)?$"


def _tenant_numbers(text: str) -> dict[str, int]:
    """ "acme=3,beta=1" -> {"acme": 3, "beta": 1} (the pattern was checked already)."""
    pairs = (item.partition("=") for item in text.split(",") if item)
    return {tenant: int(number) for tenant, _, number in pairs}


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the environment variable."""


class _Base(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JQ_", extra="ignore", frozen=True)

    log_level: str = "INFO"
    log_format: str = Field("json", pattern="^(json|text)$")
    # OTLP/gRPC collector for traces, e.g. http://otel-collector:4317; empty: no export.
    otlp_endpoint: str = ""
    # Of the traces that start here (no sampled parent), the share kept; a parent's
    # decision is always followed, so a sampled submitter's trace is complete.
    trace_sample_ratio: float = Field(1.0, ge=0.0, le=1.0)


class TlsClientSettings(_Base):
    """How a client (SDK, jq-ctl, jq-worker) reaches jq-server: TLS unless told otherwise."""

    # The CA that signed the server's certificate; empty: the system's trust store.
    tls_ca_file: str = ""
    # A client certificate and key for mTLS (both or neither).
    tls_client_cert_file: str = ""
    tls_client_key_file: str = ""
    # The name the server's certificate must carry, when it differs from the address's host.
    tls_server_name: str = ""
    # Plaintext gRPC: allowed without this only to a loopback address (local development).
    plaintext: bool = False

    @model_validator(mode="after")
    def _pair(self) -> TlsClientSettings:
        if bool(self.tls_client_cert_file) != bool(self.tls_client_key_file):
            raise ValueError("JQ_TLS_CLIENT_CERT_FILE and JQ_TLS_CLIENT_KEY_FILE go together")
        return self


class KafkaSettings(_Base):
    """Where job events are published (and read by `jq-ctl events tail`); empty: nowhere."""

    kafka_bootstrap_servers: str = ""
    kafka_security_protocol: str = Field(
        "PLAINTEXT", pattern="^(PLAINTEXT|SSL|SASL_PLAINTEXT|SASL_SSL)$"
    )
    # SCRAM-SHA-512 (MSK SCRAM), SCRAM-SHA-256, PLAIN, or AWS_MSK_IAM (OAUTHBEARER with a
    # token from the AWS MSK IAM signer, signed for aws_region).
    kafka_sasl_mechanism: str = Field(
        "", pattern="^(|PLAIN|SCRAM-SHA-256|SCRAM-SHA-512|AWS_MSK_IAM)$"
    )
    kafka_sasl_username: str = ""
    kafka_sasl_password: str = ""
    kafka_ssl_ca_location: str = ""  # a CA bundle file; empty: the system's trust store
    kafka_topic_prefix: str = ""  # e.g. "staging." in front of every topic name
    kafka_topic_partitions: int = Field(6, ge=1)
    # -1: the broker's default.replication.factor (3 on a 3-AZ MSK cluster).
    kafka_replication_factor: int = Field(-1, ge=-1)
    kafka_create_topics: bool = True
    kafka_delivery_timeout: Duration = dt.timedelta(seconds=30)
    kafka_relay_batch: int = Field(500, ge=1, le=100000)
    kafka_relay_interval: Duration = dt.timedelta(milliseconds=200)
    # Worker heartbeat summaries on worker.heartbeat: at most one per worker per interval.
    kafka_heartbeat_interval: Duration = dt.timedelta(seconds=30)
    # jobq consumer groups (jq-result-processor, jq-metrics-aggregator): how long the group
    # waits for a silent member before handing its partitions to the others.
    kafka_consumer_session_timeout: Duration = dt.timedelta(seconds=45)
    aws_region: str = ""


class ResultProcessorSettings(KafkaSettings):
    """jq-result-processor: the jobq-result-processor consumer group and its /metrics port."""

    result_processor_group: str = "jobq-result-processor"
    result_processor_http_host: str = "127.0.0.1"
    result_processor_http_port: int = Field(8082, ge=0, le=65535)
    # How often the lag gauge is refreshed from the broker (and offsets committed at most).
    result_processor_lag_interval: Duration = dt.timedelta(seconds=5)
    # A file to append the lines to (and recover dedupe state from at start); empty: stdout.
    result_processor_output: str = ""
    # A fault the e2e tests inject (JQ_TEST_FAULT); empty in production.
    # result-processor-crash-after-write: SIGKILL once a batch's lines are written and
    # flushed, before its offsets are committed.
    test_fault: str = Field("", pattern="^(|result-processor-crash-after-write)$")


class MetricsAggregatorSettings(KafkaSettings):
    """jq-metrics-aggregator: the jobq-metrics-aggregator consumer group and its /metrics."""

    metrics_aggregator_group: str = "jobq-metrics-aggregator"
    metrics_aggregator_http_host: str = "127.0.0.1"
    metrics_aggregator_http_port: int = Field(8083, ge=0, le=65535)
    metrics_aggregator_lag_interval: Duration = dt.timedelta(seconds=5)


class RedisSettings(_Base):
    """Coordination between replicas (ADR 0015); empty JQ_REDIS_URL: in-process, one server."""

    # redis:// or rediss:// (TLS); redis+cluster:// or rediss+cluster:// for a cluster.
    redis_url: str = ""
    # A cluster whatever the URL's scheme says (e.g. an ElastiCache configuration endpoint).
    redis_cluster: bool = False
    # The AUTH login from AWS Secrets Manager (JSON with username and password, re-read on
    # reconnect); empty: the URL's own, if any.
    redis_auth_secret_arn: str = ""
    # A Redis that does not answer within this falls back (cache bypassed, presence from
    # the database) rather than holding the request up.
    redis_timeout: Duration = dt.timedelta(milliseconds=500)
    # How long GetJob and WatchJob may serve a job's status from the cache.
    status_cache_ttl: Duration = dt.timedelta(seconds=2)

    @model_validator(mode="after")
    def _redis_consistent(self) -> RedisSettings:
        if self.redis_url and not self.redis_url.startswith(
            ("redis://", "rediss://", "redis+cluster://", "rediss+cluster://")
        ):
            raise ValueError(
                "JQ_REDIS_URL must be redis://, rediss://, redis+cluster:// or rediss+cluster://"
            )
        if self.redis_auth_secret_arn and not self.redis_url:
            raise ValueError("JQ_REDIS_AUTH_SECRET_ARN needs JQ_REDIS_URL")
        if not dt.timedelta(0) < self.status_cache_ttl <= dt.timedelta(minutes=1):
            raise ValueError("JQ_STATUS_CACHE_TTL must be more than 0 and at most 1m")
        return self


class ServerSettings(KafkaSettings, RedisSettings):
    grpc_host: str = "127.0.0.1"
    grpc_port: int = Field(50051, ge=0, le=65535)
    http_host: str = "127.0.0.1"
    http_port: int = Field(8080, ge=0, le=65535)
    database_url: str = "sqlite:///.jq/jobq.db"
    # The event loop: uvloop (the default; asyncio's own where uvloop is not installed) or
    # asyncio, to rule the loop out when chasing a problem.
    event_loop: LoopName = "uvloop"
    # For what needs a session (migrations, LISTEN, the leader lock) when database_url
    # goes through PgBouncer in transaction mode; empty: database_url.
    database_direct_url: str = ""
    database_pool_min: int = Field(2, ge=0)
    database_pool_max: int = Field(20, ge=1)
    # How long a request waits for a pooled connection before it fails UNAVAILABLE.
    database_pool_timeout: Duration = dt.timedelta(seconds=10)
    # Credentials from AWS Secrets Manager (the RDS secret JSON); re-read on rejection.
    database_secret_arn: str = ""
    # For `jq-server migrate` only, run as the owner (ADR 0019): the application's own
    # login, given its password and membership of the jobq_app role (migration 0010).
    database_app_user: str = ""
    database_app_password: str = ""
    migrations_dir: Path | None = None
    migrate_on_start: bool = True
    max_payload_bytes: int = Field(1024 * 1024, ge=1, le=64 << 20)
    max_batch: int = Field(1000, ge=1, le=10000)
    # Nesting of a payload or result; Python's JSON parser recurses once per level.
    max_json_depth: int = Field(64, ge=1, le=500)
    # A worker's failure text is kept up to this many bytes (NULs escaped), never refused.
    max_error_bytes: int = Field(16384, ge=256, le=1 << 20)
    # Nodes in one SubmitWorkflow (ADR 0016): each is a job, all inserted in one transaction.
    max_workflow_nodes: int = Field(1000, ge=1, le=100_000)
    # A workflow node's parents' results, summed, that GetParentResults hands its worker.
    max_parent_results_bytes: int = Field(4 << 20, ge=1024, le=64 << 20)
    # The largest gRPC request accepted (RESOURCE_EXHAUSTED above it); 0: derived from
    # max_batch, max_payload_bytes and max_error_bytes (see receive_limit).
    max_receive_bytes: int = Field(0, ge=0, le=1 << 30)
    auto_create_queues: bool = True
    scheduler_interval: Duration = dt.timedelta(milliseconds=250)
    scheduler_batch: int = Field(500, ge=1)
    retention_interval: Duration = dt.timedelta(minutes=1)
    # Job events older than this are deleted by the leader: published ones (or, with no Kafka
    # configured, all), never those of a job not yet finished (ADR 0010).
    outbox_retention: Duration = dt.timedelta(days=7)
    max_lease_wait: Duration = dt.timedelta(seconds=30)
    shutdown_grace: Duration = dt.timedelta(seconds=10)
    # A server stream (WatchJob) whose reader takes nothing for this long is dropped.
    stream_send_timeout: Duration = dt.timedelta(seconds=30)
    # gRPC keepalive: ping a connection quiet for keepalive_time, close it when a ping is not
    # answered within keepalive_timeout (a half-open peer); close connections with no call
    # for max_connection_idle. Clients may ping as often as client_ping_min_interval.
    grpc_keepalive_time: Duration = dt.timedelta(seconds=60)
    grpc_keepalive_timeout: Duration = dt.timedelta(seconds=20)
    grpc_keepalive_permit_without_calls: bool = True
    grpc_max_connection_idle: Duration = dt.timedelta(minutes=10)
    grpc_client_ping_min_interval: Duration = dt.timedelta(seconds=10)
    # Queue defaults for queues created on first submit.
    default_max_attempts: int = Field(3, ge=1, le=1000)
    default_lease_timeout: Duration = dt.timedelta(seconds=30)
    default_backoff_base: Duration = dt.timedelta(seconds=1)
    default_backoff_max: Duration = dt.timedelta(hours=1)
    default_retention: Duration = dt.timedelta(days=7)
    # Fair dispatch across tenants (ADR 0017): "tenant=weight,..." e.g. "acme=3,beta=1";
    # a tenant not named weighs 1. A tenant's share of leases across the queues a worker
    # serves in several tenants follows its weight, whatever its backlog.
    tenant_weights: str = Field("", pattern=_TENANT_WEIGHTS)
    # A tenant-wide cap on running jobs across all its queues: "tenant=N,..."; counted by
    # the database in the lease transaction, like every cap (ADR 0017).
    tenant_concurrency_limits: str = Field("", pattern=_TENANT_CAPS)
    # A fault the e2e tests inject into a real process (JQ_TEST_FAULT); empty in production.
    # relay-crash-after-produce: the relay SIGKILLs its own process once Kafka acknowledged
    # a batch and before the outbox marks it published.
    test_fault: str = Field("", pattern="^(|relay-crash-after-produce)$")
    # --- authentication (README "Authentication", ADR 0008) ---
    # Local development only: every call runs as an all-tenant principal with every role.
    auth_unauthenticated: bool = False
    # JSON list of keys accepted without the store, e.g. for the first admin and for workers:
    # [{"key": "jq_<id>_<secret>" | "id": "<id>", "sha256": "<hex>", "tenant": "t",
    #   "roles": ["worker"], "queues": ["emails"]}]
    auth_bootstrap_keys: str = ""
    # JWT bearer tokens: a JWKS file path or https:// URL; issuer and audience are required.
    auth_jwt_jwks: str = ""
    auth_jwt_issuer: str = ""
    auth_jwt_audience: str = ""
    auth_jwt_algorithms: str = "RS256,ES256"
    auth_jwt_leeway: Duration = dt.timedelta(seconds=30)
    auth_jwt_jwks_refresh: Duration = dt.timedelta(minutes=5)
    # A token naming an unknown kid fetches the URL again at most this often.
    auth_jwt_jwks_cooldown: Duration = dt.timedelta(seconds=30)
    auth_jwt_tenant_claim: str = "tenant"
    auth_jwt_roles_claim: str = "roles"
    auth_jwt_queues_claim: str = "queues"
    # Client certificates: JSON map from a SAN (spiffe://... URI or DNS name) to
    # {"tenant": "t", "roles": [...], "queues": [...]}.
    auth_mtls_subjects: str = ""
    # Signs the console's session cookies (ADR 0020): the same value on every replica, so a
    # login on one holds on all; empty: a random one per process (one replica, and a
    # restart logs everyone out).
    console_secret: str = ""
    # Server TLS; certificate and key are re-read when their files change.
    tls_cert_file: str = ""
    tls_key_file: str = ""
    # Set: every client must present a certificate signed by this CA (mTLS).
    tls_client_ca_file: str = ""

    def tenant_weight_map(self) -> dict[str, int]:
        return _tenant_numbers(self.tenant_weights)

    def tenant_cap_map(self) -> dict[str, int]:
        return _tenant_numbers(self.tenant_concurrency_limits)

    @model_validator(mode="after")
    def _auth_consistent(self) -> ServerSettings:
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ValueError("JQ_TLS_CERT_FILE and JQ_TLS_KEY_FILE go together")
        if self.tls_client_ca_file and not self.tls_cert_file:
            raise ValueError("JQ_TLS_CLIENT_CA_FILE needs JQ_TLS_CERT_FILE and JQ_TLS_KEY_FILE")
        if self.auth_mtls_subjects and not self.tls_client_ca_file:
            raise ValueError("JQ_AUTH_MTLS_SUBJECTS needs JQ_TLS_CLIENT_CA_FILE")
        if self.auth_jwt_jwks and not (self.auth_jwt_issuer and self.auth_jwt_audience):
            raise ValueError("JQ_AUTH_JWT_JWKS needs JQ_AUTH_JWT_ISSUER and JQ_AUTH_JWT_AUDIENCE")
        if self.console_secret and len(self.console_secret) < 32:
            # It alone vouches for a session's key: a guessable one forges any session.
            raise ValueError("JQ_CONSOLE_SECRET must be at least 32 characters")
        if self.auth_jwt_leeway > dt.timedelta(minutes=5):
            raise ValueError("JQ_AUTH_JWT_LEEWAY must be at most 5m")
        if bool(self.database_app_user) != bool(self.database_app_password):
            raise ValueError("JQ_DATABASE_APP_USER and JQ_DATABASE_APP_PASSWORD go together")
        return self

    def has_credentials(self) -> bool:
        """Whether any credential source is configured (keys in the store are counted apart)."""
        return bool(self.auth_bootstrap_keys or self.auth_jwt_jwks or self.auth_mtls_subjects)

    @model_validator(mode="after")
    def _within_bounds(self) -> ServerSettings:
        # Queue defaults are stored with each auto-created queue: a huge one would overflow
        # the lease and retry arithmetic later, so they share the API's maxima.
        for name in ("lease_timeout", "backoff_base", "backoff_max", "retention"):
            maximum = bounds.DURATION_MAX[name]
            if getattr(self, f"default_{name}") > maximum:
                raise ValueError(f"JQ_DEFAULT_{name.upper()} must be at most {maximum.days} days")
        if not dt.timedelta(minutes=1) <= self.outbox_retention <= dt.timedelta(days=3650):
            raise ValueError("JQ_OUTBOX_RETENTION must be between 1 minute and 3650 days")
        if self.max_receive_bytes and self.max_receive_bytes < self.max_payload_bytes + (
            REQUEST_OVERHEAD_BYTES
        ):
            raise ValueError(
                "JQ_MAX_RECEIVE_BYTES must hold one JQ_MAX_PAYLOAD_BYTES payload plus "
                f"{REQUEST_OVERHEAD_BYTES} bytes of other fields (0: derived)"
            )
        return self

    def receive_limit(self) -> int:
        """The gRPC server's max receive message length: a full batch of payloads (or of
        error texts) and their other fields, capped at RECEIVE_CAP_BYTES so one request
        cannot take the server's memory; never less than one payload's request."""
        if self.max_receive_bytes:
            return self.max_receive_bytes
        largest = max(self.max_payload_bytes, self.max_error_bytes)
        batch = self.max_batch * (largest + JOB_OVERHEAD_BYTES)
        return max(min(batch, RECEIVE_CAP_BYTES), self.max_payload_bytes + REQUEST_OVERHEAD_BYTES)


class WorkerSettings(TlsClientSettings):
    server_address: str = "127.0.0.1:50051"
    # The bearer credential sent with every call: an API key (jq_...) or a JWT.
    token: str = ""
    worker_id: str = ""
    # Comma-separated modules whose @task functions the worker runs; --tasks overrides.
    tasks: str = "jobq.examples"
    queues: str = ""
    concurrency: int = Field(10, ge=1, le=10000)
    grace_period: Duration = dt.timedelta(seconds=30)
    lease_wait: Duration = dt.timedelta(seconds=5)
    http_host: str = "127.0.0.1"
    http_port: int = Field(8081, ge=0, le=65535, validation_alias="JQ_WORKER_HTTP_PORT")
    report_interval: Duration = dt.timedelta(milliseconds=20)
    # The event loop: uvloop (the default; asyncio's own where uvloop is not installed) or
    # asyncio, to rule the loop out when chasing a problem.
    event_loop: LoopName = "uvloop"


class ClientSettings(TlsClientSettings):
    server_address: str = "127.0.0.1:50051"
    # The bearer credential sent with every call: an API key (jq_...) or a JWT.
    token: str = ""


SETTINGS_CLASSES: tuple[type[_Base], ...] = (
    ServerSettings,
    WorkerSettings,
    ClientSettings,
    ResultProcessorSettings,
    MetricsAggregatorSettings,
    KafkaSettings,
    RedisSettings,
)

# JQ_ names that are no setting of a jobq process but are read where they are set: the
# runbooks' shell variable, scripts/run.sh's wait and the test harness's own knobs.
NOT_SETTINGS = frozenset(
    {
        "JQ_ENV",
        "JQ_RUN_START_WAIT",
        "JQ_TEST_PG_BIN",
        "JQ_TEST_PGBOUNCER",
        "JQ_TEST_KAFKA_LIBS",
        "JQ_TEST_EXECUTIONS",
        "JQ_FUZZ_SEED",
        "JQ_FUZZ_REQUESTS",
        "JQ_UPDATE_SCHEMA_SNAPSHOT",
    }
)


def setting_names(cls: type[BaseSettings]) -> set[str]:
    """The environment variables one settings class reads."""
    names = set()
    for name, field in cls.model_fields.items():
        alias = field.validation_alias
        names.add(alias.upper() if isinstance(alias, str) else f"JQ_{name.upper()}")
    return names


def known_variables() -> frozenset[str]:
    """Every JQ_ variable any jobq process knows: one environment serves them all."""
    known: set[str] = set(NOT_SETTINGS)
    for cls in SETTINGS_CLASSES:
        known |= setting_names(cls)
    return frozenset(known)


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    known = known_variables()
    return sorted(k for k in environ if k.upper().startswith("JQ_") and k.upper() not in known)


T = TypeVar("T", bound=BaseSettings)


def load(cls: type[T], **overrides: Any) -> T:
    """Build settings from the environment; raise ConfigError naming the variable at fault.

    An unknown JQ_ variable is an error too: a misspelt security setting (JQ_AUTH_TOKENS
    for JQ_AUTH_BOOTSTRAP_KEYS) must stop the start, not be ignored."""
    unknown = unknown_variables(os.environ)
    if unknown:
        raise ConfigError(
            f"{unknown[0]}: unknown setting (no jobq process reads it; see README settings)"
            + (f"; also unknown: {', '.join(unknown[1:])}" if unknown[1:] else "")
        )
    try:
        return cls(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = ".".join(str(p) for p in error["loc"])
            # A check across settings has no single location; its message names them.
            problems.append(f"JQ_{field.upper()}: {error['msg']}" if field else error["msg"])
        raise ConfigError("; ".join(problems)) from None


def sqlite_path(url: str) -> Path:
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        raise InvalidArgument("JQ_DATABASE_URL", f"{url!r} is not a sqlite:/// URL")
    return Path(url[len(prefix) :])
