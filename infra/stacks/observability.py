"""Observability stack: log groups, the alarm topic, alarms with runbooks, and a CloudWatch dashboard.

The alarms on jobq's own metrics (``jq_*``) read the ``JobQ`` namespace with an
``Environment`` dimension. Nothing publishes that namespace yet: it needs a
CloudWatch agent or ADOT collector scraping the pods (docs/deploy.md, "Not run
here"). Until then those alarms see no data and must stay quiet. The AWS-managed
metrics of RDS, ElastiCache and MSK come for free.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from infra.components.alarms import AlertSpec, RunbookAlarm
from infra.config import EnvironmentConfig
from infra.stacks.data import DataStack

JOBQ_NAMESPACE = "JobQ"


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
                "jq-server", "jq-worker", "jq-pgbouncer", "jq-result-processor", "jq-metrics-aggregator"
            )
        }

        topic_key = kms.Key(self, "AlarmTopicKey", enable_key_rotation=True, description=f"{prefix} alarm topic")
        topic_key.grant_encrypt_decrypt(iam.ServicePrincipal("cloudwatch.amazonaws.com"))
        self.topic = sns.Topic(self, "Alarms", topic_name=f"{prefix}-alarms", master_key=topic_key, enforce_ssl=True)
        if obs.alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(obs.alarm_email))

        env_dim = {"Environment": config.name}

        def jobq(metric: str, statistic: str = "Maximum") -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=JOBQ_NAMESPACE, metric_name=metric, dimensions_map=env_dim,
                statistic=statistic, period=Duration.minutes(1),
            )

        db_id = {"DBInstanceIdentifier": data.database.instance.instance_identifier}
        redis_id = {"ReplicationGroupId": data.cache.replication_group.ref}
        kafka_id = {"Cluster Name": data.kafka.cluster_name}

        def aws(namespace: str, metric: str, dims: dict[str, str], statistic: str = "Average") -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=namespace, metric_name=metric, dimensions_map=dims, statistic=statistic, period=Duration.minutes(5)
            )

        specs = [
            AlertSpec("JobQueueDepthHigh", "JobqQueueBacklogGrowing",
                      "Queued jobs are piling up faster than workers drain them.",
                      jobq("jq_job_queue_depth"), obs.queue_depth_alarm_threshold, evaluation_periods=10),
            AlertSpec("OutboxBacklogHigh", "JobqOutboxBacklogGrowing",
                      "Job events are not reaching Kafka; consumers are falling behind.",
                      jobq("jq_outbox_backlog"), obs.outbox_backlog_alarm_threshold, evaluation_periods=10),
            AlertSpec("DeadLettersIncreasing", "JobqDeadLettersRising",
                      "Jobs are exhausting their attempts and landing in the dead-letter queue.",
                      jobq("jq_dead_letters_total", "Sum"), 0, evaluation_periods=5),
            AlertSpec("StoreErrors", "JobqStoreErrors",
                      "The server is failing to read or write PostgreSQL.",
                      jobq("jq_store_errors_total", "Sum"), 0, evaluation_periods=3),
            AlertSpec("NoActiveWorkers", "JobqNoActiveWorkers",
                      "No worker is connected; queued jobs will not run.",
                      jobq("jq_workers_active", "Minimum"), 1,
                      comparison=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD, evaluation_periods=5,
                      # Not BREACHING, although "no data" could mean "no workers": nothing
                      # publishes jq_* metrics to CloudWatch yet (a CloudWatch agent or ADOT
                      # collector must scrape the pods first; docs/deploy.md), so a breaching
                      # alarm would page the moment staging or prod is deployed. Revisit once
                      # the collector runs: then missing data does mean the workers are gone.
                      treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING)
            if config.workload.worker_min_replicas > 0 else None,
            AlertSpec("DatabaseCpuHigh", "DatabaseCpuHigh",
                      "RDS PostgreSQL CPU above 80%.",
                      aws("AWS/RDS", "CPUUtilization", db_id), 80),
            AlertSpec("DatabaseStorageLow", "DatabaseStorageLow",
                      "RDS PostgreSQL has less than 10 GiB free.",
                      aws("AWS/RDS", "FreeStorageSpace", db_id, "Minimum"), 10 * 1024**3,
                      comparison=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD),
            AlertSpec("RedisMemoryHigh", "RedisMemoryHigh",
                      "ElastiCache Redis memory use above 80%.",
                      aws("AWS/ElastiCache", "DatabaseMemoryUsagePercentage", redis_id, "Maximum"), 80),
            AlertSpec("KafkaDiskHigh", "KafkaDiskHigh",
                      "An MSK broker's data volume is above 80% full.",
                      aws("AWS/Kafka", "KafkaDataLogsDiskUsed", kafka_id, "Maximum"), 80),
        ]
        self.alarms = [
            RunbookAlarm(self, spec.name, spec=spec, prefix=prefix, topic=self.topic, runbook_base_url=runbook_base_url).alarm
            for spec in specs
            if spec is not None
        ]

        dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=f"{prefix}-overview")
        dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Queue depth (deepest queue)", left=[jobq("jq_job_queue_depth")], width=12),
            cloudwatch.GraphWidget(title="Active workers", left=[jobq("jq_workers_active", "Average")], width=12),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Outbox backlog", left=[jobq("jq_outbox_backlog")], width=8),
            cloudwatch.GraphWidget(title="Dead letters", left=[jobq("jq_dead_letters_total", "Sum")], width=8),
            cloudwatch.GraphWidget(title="Store errors", left=[jobq("jq_store_errors_total", "Sum")], width=8),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(title="RDS CPU / connections", left=[aws("AWS/RDS", "CPUUtilization", db_id)],
                                   right=[aws("AWS/RDS", "DatabaseConnections", db_id)], width=8),
            cloudwatch.GraphWidget(title="Redis CPU / memory", left=[aws("AWS/ElastiCache", "EngineCPUUtilization", redis_id)],
                                   right=[aws("AWS/ElastiCache", "DatabaseMemoryUsagePercentage", redis_id)], width=8),
            cloudwatch.GraphWidget(title="MSK disk used", left=[aws("AWS/Kafka", "KafkaDataLogsDiskUsed", kafka_id, "Maximum")], width=8),
        )
        dashboard.add_widgets(cloudwatch.AlarmStatusWidget(title="Alarms", alarms=self.alarms, width=24))
