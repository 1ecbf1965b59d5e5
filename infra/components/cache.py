"""ElastiCache Redis (cluster mode) for coordination: presence, locks, rate limits."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticache as elasticache
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.components.keys import data_key
from infra.config import CacheConfig

REDIS_PORT = 6379


class RedisCluster(Construct):
    """Redis 7 with cluster mode, automatic failover across AZs, TLS, at-rest encryption and AUTH."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: CacheConfig,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        name: str,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)

        self.security_group = ec2.SecurityGroup(
            self, "SecurityGroup", vpc=vpc, description="jobq Redis: reachable from the private (EKS) subnets only",
            allow_all_outbound=False,
        )
        # Clients are admitted by security group, not CIDR: the platform stack adds a rule
        # from the EKS cluster security group. (The description predates that; changing it
        # would replace the group.)

        # ElastiCache AUTH tokens allow printable ASCII except a few characters; an
        # alphanumeric token also drops into a rediss:// URL without escaping.
        self.auth_secret = secretsmanager.Secret(
            self,
            "AuthToken",
            secret_name=f"{name}/redis-auth",
            description="AUTH token for the jobq Redis replication group",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template='{"username":"default"}',
                generate_string_key="token",
                exclude_punctuation=True,
                password_length=64,
            ),
        )
        key = data_key(self, "Key", description="jobq Redis at-rest encryption", store_policy=config.removal_policy)

        subnet_group = elasticache.CfnSubnetGroup(
            self,
            "Subnets",
            description="jobq Redis data subnets",
            subnet_ids=vpc.select_subnets(subnet_group_name=subnets.subnet_group_name).subnet_ids,
        )
        slow_log = logs.LogGroup(self, "SlowLog", retention=log_retention, removal_policy=RemovalPolicy.DESTROY)

        # The construct id "ReplicationGroup" must never change: CloudFormation would
        # replace the cluster and drop every lock and cached status.
        self.replication_group = elasticache.CfnReplicationGroup(
            self,
            "ReplicationGroup",
            replication_group_description=f"{name} coordination (cluster mode)",
            engine="redis",
            engine_version="7.1",
            cache_node_type=config.node_type,
            cache_parameter_group_name="default.redis7.cluster.on",
            cluster_mode="enabled",
            num_node_groups=config.shards,
            replicas_per_node_group=config.replicas_per_shard,
            automatic_failover_enabled=True,
            multi_az_enabled=True,
            transit_encryption_enabled=True,
            transit_encryption_mode="required",
            at_rest_encryption_enabled=True,
            kms_key_id=key.key_arn,
            auth_token=self.auth_secret.secret_value_from_json("token").unsafe_unwrap(),
            port=REDIS_PORT,
            cache_subnet_group_name=subnet_group.ref,
            security_group_ids=[self.security_group.security_group_id],
            snapshot_retention_limit=config.snapshot_retention_days,
            auto_minor_version_upgrade=True,
            log_delivery_configurations=[
                elasticache.CfnReplicationGroup.LogDeliveryConfigurationRequestProperty(
                    destination_type="cloudwatch-logs",
                    destination_details=elasticache.CfnReplicationGroup.DestinationDetailsProperty(
                        cloud_watch_logs_details=elasticache.CfnReplicationGroup.CloudWatchLogsDestinationDetailsProperty(
                            log_group=slow_log.log_group_name
                        )
                    ),
                    log_format="json",
                    log_type="slow-log",
                )
            ],
        )
        self.replication_group.apply_removal_policy(config.removal_policy)

    @property
    def endpoint(self) -> str:
        return self.replication_group.attr_configuration_end_point_address

    @property
    def address(self) -> str:
        """host:port of the configuration endpoint, which a cluster client starts from."""
        group = self.replication_group
        return f"{group.attr_configuration_end_point_address}:{group.attr_configuration_end_point_port}"

    @property
    def port(self) -> str:
        return self.replication_group.attr_configuration_end_point_port
