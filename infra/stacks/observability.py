"""Observability stack: log groups, the alarm topic and who it pages, alarms on the AWS
services' own metrics with runbooks, and a CloudWatch dashboard of them.

jobq's own metrics (``jq_*``) are watched in the cluster: Prometheus loads
``alerts/jobq.rules.yml`` and Alertmanager publishes to this stack's topic
(infra/components/monitoring.py, ADR 0012). CloudWatch watches only what AWS publishes
for RDS, ElastiCache and MSK, with the dimensions those services publish.
"""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from infra.components.alarms import AlertSpec, RunbookAlarm
from infra.components.monitoring import UNLABELLED_LOG_GROUP
from infra.config import EnvironmentConfig, Pager
from infra.stacks.data import DataStack



def _subscription(pager: Pager) -> sns.ITopicSubscription:
    if pager.protocol == "email":
        return subscriptions.EmailSubscription(pager.endpoint)
    if pager.protocol == "https":
        return subscriptions.UrlSubscription(pager.endpoint, protocol=sns.SubscriptionProtocol.HTTPS)
    raise ValueError(f"pager protocol {pager.protocol!r}: email or https")


class ObservabilityStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        data: DataStack,
        runbook_base_url: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        prefix = config.prefix
        obs = config.observability

        self.log_groups = {
            component: logs.LogGroup(
                self,
                f"{component}Logs",
                log_group_name=f"/jobq/{config.name}/{component}",
                retention=obs.log_retention,
                removal_policy=RemovalPolicy.RETAIN if config.is_production else RemovalPolicy.DESTROY,
            )
            for component in (
                "jq-server", "jq-worker", "jq-pgbouncer", "jq-result-processor", "jq-metrics-aggregator",
                UNLABELLED_LOG_GROUP,
            )
        }

        topic_key = kms.Key(self, "AlarmTopicKey", enable_key_rotation=True, description=f"{prefix} alarm topic")
        topic_key.grant_encrypt_decrypt(iam.ServicePrincipal("cloudwatch.amazonaws.com"))
        self.topic_key = topic_key
        self.topic = sns.Topic(self, "Alarms", topic_name=f"{prefix}-alarms", master_key=topic_key, enforce_ssl=True)
        for pager in obs.pagers:
            self.topic.add_subscription(_subscription(pager))
        # The dead-man's switch (docs/runbooks/Watchdog.md): Alertmanager publishes the
        # always-firing Watchdog here every minute. No subscriber: SNS's own count of
        # published messages is the heartbeat the alarm below watches.
        self.heartbeat_topic = sns.Topic(
            self, "Heartbeat", topic_name=f"{prefix}-alerting-heartbeat", master_key=topic_key, enforce_ssl=True,
        )

        db_id = {"DBInstanceIdentifier": data.database.instance.instance_identifier}

        def aws(namespace: str, metric: str, dims: dict[str, str], statistic: str = "Average") -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=namespace, metric_name=metric, dimensions_map=dims, statistic=statistic, period=Duration.minutes(5)
            )

        # ElastiCache publishes host and engine metrics per node (CacheClusterId, optionally
        # CacheNodeId), not per replication group; MSK's KafkaDataLogsDiskUsed is per
        # broker ("Cluster Name", "Broker ID"). One alarm per node and per broker.
        redis_nodes = {
            f"{shard:04d}-{node:03d}": {"CacheClusterId": cdk.Fn.join("-", [
                data.cache.replication_group.ref, f"{shard:04d}", f"{node:03d}"
            ])}
            for shard in range(1, config.cache.shards + 1)
            for node in range(1, config.cache.replicas_per_shard + 2)
        }
        kafka_brokers = {
            broker: {"Cluster Name": data.kafka.cluster_name, "Broker ID": str(broker)}
            for broker in range(1, config.kafka.brokers + 1)
        }

        specs = [
            AlertSpec("DatabaseCpuHigh", "DatabaseCpuHigh",
                      "RDS PostgreSQL CPU above 80%.",
                      aws("AWS/RDS", "CPUUtilization", db_id), 80),
            AlertSpec("DatabaseStorageLow", "DatabaseStorageLow",
                      "RDS PostgreSQL has less than 10 GiB free.",
                      aws("AWS/RDS", "FreeStorageSpace", db_id, "Minimum"), 10 * 1024**3,
                      comparison=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD),
            *(
                AlertSpec(f"RedisMemoryHigh{suffix.replace('-', '')}", "RedisMemoryHigh",
                          f"ElastiCache Redis node {suffix} memory use above 80%.",
                          aws("AWS/ElastiCache", "DatabaseMemoryUsagePercentage", dims, "Maximum"), 80,
                          alarm_name="RedisMemoryHigh-" + suffix)
                for suffix, dims in redis_nodes.items()
            ),
            # Prometheus or Alertmanager down (or unable to publish): no Watchdog for 15
            # minutes. SNS publishes no datapoint for a topic nobody publishes to, so the
            # missing data is itself the breach.
            AlertSpec("AlertingHeartbeatMissing", "Watchdog",
                      "No Watchdog heartbeat from Alertmanager for 15 minutes: jobq's alerts cannot page anyone.",
                      aws("AWS/SNS", "NumberOfMessagesPublished", {"TopicName": self.heartbeat_topic.topic_name}, "Sum"),
                      1, comparison=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD),
            *(
                AlertSpec(f"KafkaDiskHigh{broker}", "KafkaDiskHigh",
                          f"MSK broker {broker}'s data volume is above 80% full.",
                          aws("AWS/Kafka", "KafkaDataLogsDiskUsed", dims, "Maximum"), 80,
                          alarm_name=f"KafkaDiskHigh-{broker}")
                for broker, dims in kafka_brokers.items()
            ),
        ]
        self.alarms = [
            RunbookAlarm(self, spec.name, spec=spec, prefix=prefix, topic=self.topic, runbook_base_url=runbook_base_url).alarm
            for spec in specs
            if spec is not None
        ]

        dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=f"{prefix}-overview")
        first_node = next(iter(redis_nodes.values()))
        dashboard.add_widgets(
            cloudwatch.GraphWidget(title="RDS CPU / connections", left=[aws("AWS/RDS", "CPUUtilization", db_id)],
                                   right=[aws("AWS/RDS", "DatabaseConnections", db_id)], width=8),
            cloudwatch.GraphWidget(title="Redis memory per node",
                                   left=[aws("AWS/ElastiCache", "DatabaseMemoryUsagePercentage", d, "Maximum")
                                         for d in redis_nodes.values()],
                                   right=[aws("AWS/ElastiCache", "EngineCPUUtilization", first_node)], width=8),
            cloudwatch.GraphWidget(title="MSK disk used per broker",
                                   left=[aws("AWS/Kafka", "KafkaDataLogsDiskUsed", d, "Maximum")
                                         for d in kafka_brokers.values()], width=8),
        )
        dashboard.add_widgets(cloudwatch.AlarmStatusWidget(title="Alarms", alarms=self.alarms, width=24))
