"""Per-environment settings for the jobq platform, in one typed place.

Everything that differs between dev, staging and prod is a field here; the
stacks and constructs take these objects as arguments and never branch on the
environment's name. Account, region and availability zones are not here: they
live in ``cdk.json`` context so that an operator can point an environment at
another account without touching code, and so that synth never asks AWS.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aws_cdk import RemovalPolicy
from aws_cdk.aws_logs import RetentionDays


class UnknownEnvironmentError(ValueError):
    """Raised when ``-c env=...`` names an environment that has no config."""


@dataclass(frozen=True)
class NetworkConfig:
    cidr: str
    max_azs: int
    nat_gateways: int
    flow_log_retention: RetentionDays


@dataclass(frozen=True)
class DatabaseConfig:
    instance_type: str
    multi_az: bool
    allocated_storage_gib: int
    max_allocated_storage_gib: int
    backup_retention_days: int
    deletion_protection: bool
    removal_policy: RemovalPolicy
    rotation_days: int = 30
    performance_insights: bool = True
    # An AWS Backup plan besides RDS's own automated backups: daily recovery points kept
    # this many days in a vault of their own (survives a deleted instance); None: no plan.
    backup_plan_retention_days: int | None = None


@dataclass(frozen=True)
class CacheConfig:
    node_type: str
    shards: int
    replicas_per_shard: int
    snapshot_retention_days: int
    removal_policy: RemovalPolicy


@dataclass(frozen=True)
class KafkaConfig:
    kafka_version: str
    instance_type: str
    brokers: int
    volume_size_gib: int
    removal_policy: RemovalPolicy


@dataclass(frozen=True)
class ClusterConfig:
    kubernetes_version: str
    instance_types: tuple[str, ...]
    min_nodes: int
    desired_nodes: int
    max_nodes: int
    deletion_protection: bool


@dataclass(frozen=True)
class WorkloadConfig:
    server_replicas: int
    worker_min_replicas: int
    worker_max_replicas: int
    worker_concurrency: int
    worker_queues: tuple[str, ...]
    worker_tasks_module: str
    # Queued jobs one worker replica is expected to absorb; KEDA divides the
    # queue depth by this to get the desired replica count.
    jobs_per_worker: int
    pgbouncer_replicas: int
    pgbouncer_pool_size: int
    ingress_host: str
    ingress_scheme: str = "internal"
    server_cpu: str = "500m"
    server_memory: str = "512Mi"
    worker_cpu: str = "500m"
    worker_memory: str = "512Mi"
    worker_shutdown_grace_seconds: int = 120
    # jq-result-processor: members of one consumer group; useful up to the topics' partitions.
    result_processor_replicas: int = 1
    result_processor_cpu: str = "100m"
    result_processor_memory: str = "256Mi"
    metrics_aggregator_replicas: int = 1
    metrics_aggregator_cpu: str = "100m"
    metrics_aggregator_memory: str = "256Mi"
    # Mirror this into ECR for production if Docker Hub rate limits bite.
    pgbouncer_image: str = "docker.io/edoburu/pgbouncer:v1.24.1-p1"


@dataclass(frozen=True)
class DnsConfig:
    """The Route 53 hosted zone that holds the gRPC host's record and its certificate's
    validation records (ADR 0019): brought by the account, named by id, never created or
    looked up here. It must be a public zone (ACM validates through public DNS) whose
    domain contains WorkloadConfig.ingress_host.
    """

    zone_id: str
    zone_name: str


@dataclass(frozen=True)
class Pager:
    """Who is paged: one subscription of the alarm topic, where Alertmanager and the
    CloudWatch alarms both send (ADR 0012).

    ``protocol`` "email" names a person or list; "https" an incident tool's SNS endpoint
    (PagerDuty's or Opsgenie's Amazon SNS integration URL).
    """

    protocol: str
    endpoint: str


@dataclass(frozen=True)
class ObservabilityConfig:
    log_retention: RetentionDays
    # Who is paged. Production refuses to synthesize without one (infra/app.py).
    pagers: tuple[Pager, ...]


@dataclass(frozen=True)
class EnvironmentConfig:
    name: str
    network: NetworkConfig
    database: DatabaseConfig
    cache: CacheConfig
    kafka: KafkaConfig
    cluster: ClusterConfig
    workload: WorkloadConfig
    observability: ObservabilityConfig
    dns: DnsConfig
    ecr_immutable_tags: bool
    ecr_keep_images: int = 30
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def namespace(self) -> str:
        return f"job-queue-{self.name}"

    @property
    def prefix(self) -> str:
        return f"jobq-{self.name}"

    @property
    def is_production(self) -> bool:
        return self.name == "prod"



ENVIRONMENTS: dict[str, EnvironmentConfig] = {
    "dev": EnvironmentConfig(
        name="dev",
        network=NetworkConfig(cidr="10.40.0.0/16", max_azs=2, nat_gateways=1, flow_log_retention=RetentionDays.TWO_WEEKS),
        database=DatabaseConfig(
            instance_type="t4g.medium",
            multi_az=False,
            allocated_storage_gib=20,
            max_allocated_storage_gib=100,
            backup_retention_days=7,
            deletion_protection=False,
            removal_policy=RemovalPolicy.DESTROY,
        ),
        cache=CacheConfig(
            node_type="cache.t4g.small", shards=1, replicas_per_shard=1,
            snapshot_retention_days=1, removal_policy=RemovalPolicy.DESTROY,
        ),
        kafka=KafkaConfig(
            kafka_version="3.6.0", instance_type="kafka.t3.small", brokers=2,
            volume_size_gib=50, removal_policy=RemovalPolicy.DESTROY,
        ),
        cluster=ClusterConfig(
            kubernetes_version="1.36", instance_types=("m5.large",),
            min_nodes=1, desired_nodes=2, max_nodes=4, deletion_protection=False,
        ),
        workload=WorkloadConfig(
            server_replicas=1, worker_min_replicas=0, worker_max_replicas=4,
            worker_concurrency=8, worker_queues=("default",), worker_tasks_module="jobq.examples",
            jobs_per_worker=50, pgbouncer_replicas=1, pgbouncer_pool_size=20,
            ingress_host="jobq.dev.internal.example.com",
        ),
        observability=ObservabilityConfig(
            log_retention=RetentionDays.TWO_WEEKS,
            pagers=(Pager("email", "jobq-dev-alerts@example.com"),),
        ),
        dns=DnsConfig(zone_id="Z00000000000000000DEV", zone_name="dev.internal.example.com"),
        ecr_immutable_tags=False,
    ),
    "staging": EnvironmentConfig(
        name="staging",
        network=NetworkConfig(cidr="10.41.0.0/16", max_azs=3, nat_gateways=1, flow_log_retention=RetentionDays.ONE_MONTH),
        database=DatabaseConfig(
            instance_type="m5.large",
            multi_az=True,
            allocated_storage_gib=50,
            max_allocated_storage_gib=200,
            backup_retention_days=7,
            deletion_protection=False,
            removal_policy=RemovalPolicy.SNAPSHOT,
        ),
        cache=CacheConfig(
            node_type="cache.m5.large", shards=2, replicas_per_shard=1,
            snapshot_retention_days=3, removal_policy=RemovalPolicy.SNAPSHOT,
        ),
        kafka=KafkaConfig(
            kafka_version="3.6.0", instance_type="kafka.m5.large", brokers=3,
            volume_size_gib=100, removal_policy=RemovalPolicy.DESTROY,
        ),
        cluster=ClusterConfig(
            kubernetes_version="1.36", instance_types=("m5.large",),
            min_nodes=2, desired_nodes=3, max_nodes=6, deletion_protection=False,
        ),
        workload=WorkloadConfig(
            server_replicas=2, worker_min_replicas=1, worker_max_replicas=10,
            worker_concurrency=16, worker_queues=("default",), worker_tasks_module="jobq.examples",
            jobs_per_worker=100, pgbouncer_replicas=2, pgbouncer_pool_size=40,
            ingress_host="jobq.staging.internal.example.com", result_processor_replicas=2,
        ),
        observability=ObservabilityConfig(
            log_retention=RetentionDays.ONE_MONTH,
            pagers=(Pager("email", "jobq-staging-alerts@example.com"),),
        ),
        dns=DnsConfig(zone_id="Z0000000000000000STG", zone_name="staging.internal.example.com"),
        ecr_immutable_tags=True,
    ),
    "prod": EnvironmentConfig(
        name="prod",
        network=NetworkConfig(cidr="10.42.0.0/16", max_azs=3, nat_gateways=3, flow_log_retention=RetentionDays.THREE_MONTHS),
        database=DatabaseConfig(
            instance_type="m5.xlarge",
            multi_az=True,
            allocated_storage_gib=200,
            max_allocated_storage_gib=1000,
            backup_retention_days=30,
            deletion_protection=True,
            removal_policy=RemovalPolicy.RETAIN,
            backup_plan_retention_days=35,
        ),
        cache=CacheConfig(
            node_type="cache.m5.large", shards=3, replicas_per_shard=2,
            snapshot_retention_days=7, removal_policy=RemovalPolicy.RETAIN,
        ),
        kafka=KafkaConfig(
            kafka_version="3.6.0", instance_type="kafka.m5.large", brokers=3,
            volume_size_gib=500, removal_policy=RemovalPolicy.RETAIN,
        ),
        cluster=ClusterConfig(
            kubernetes_version="1.36", instance_types=("c5.xlarge",),
            # 16 x 4 vCPU: room for 40 workers at 1 vCPU besides the servers, PgBouncer
            # and the controllers (tests/infra/test_prod_invariants.py holds the sum).
            min_nodes=3, desired_nodes=3, max_nodes=16, deletion_protection=True,
        ),
        workload=WorkloadConfig(
            server_replicas=3, worker_min_replicas=3, worker_max_replicas=40,
            worker_concurrency=16, worker_queues=("default",), worker_tasks_module="jobq.examples",
            jobs_per_worker=100, pgbouncer_replicas=3, pgbouncer_pool_size=80,
            ingress_host="jobq.prod.internal.example.com", result_processor_replicas=2,
            server_cpu="1", server_memory="1Gi", worker_cpu="1", worker_memory="1Gi",
        ),
        observability=ObservabilityConfig(
            log_retention=RetentionDays.ONE_YEAR,
            # The on-call rotation; an incident tool's SNS URL is a Pager("https", ...)
            # (docs/deploy.md "Who is paged").
            pagers=(Pager("email", "jobq-oncall@example.com"),),
        ),
        dns=DnsConfig(zone_id="Z000000000000000PROD", zone_name="prod.internal.example.com"),
        ecr_immutable_tags=True,
    ),
}


def get_config(name: str | None) -> EnvironmentConfig:
    """Return the config for ``name`` or fail with the list of allowed names."""
    allowed = ", ".join(sorted(ENVIRONMENTS))
    if not name:
        raise UnknownEnvironmentError(f"no environment given: pass -c env=<name>, one of: {allowed}")
    try:
        return ENVIRONMENTS[name]
    except KeyError:
        raise UnknownEnvironmentError(
            f"unknown environment {name!r}: pass -c env=<name>, one of: {allowed}"
        ) from None
