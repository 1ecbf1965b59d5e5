"""Platform stack: EKS, ECR and the identities (IRSA) the workloads run as."""

from __future__ import annotations

from typing import Any

from aws_cdk import Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks as eks
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.components.cache import REDIS_PORT
from infra.components.cluster import JobqCluster
from infra.components.database import POSTGRES_PORT
from infra.components.edge import Edge
from infra.components.kafka import KAFKA_IAM_TLS_PORT
from infra.components.monitoring import Monitoring
from infra.components.network import JobqNetwork
from infra.components.registry import ImageRepositories
from infra.config import EnvironmentConfig
from infra.k8s import certificates, identity
from infra.stacks.data import DataStack
from infra.stacks.observability import ObservabilityStack


class PlatformStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        network: JobqNetwork,
        data: DataStack,
        observability: ObservabilityStack,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        ns = config.namespace

        self.registry = ImageRepositories(
            self, "Images", immutable_tags=config.ecr_immutable_tags, keep_images=config.ecr_keep_images
        )
        self.eks = JobqCluster(
            self, "Eks", config=config.cluster, name=config.prefix, vpc=network.vpc, subnets=network.private_subnets
        )
        cluster = self.eks.cluster
        self.monitoring = Monitoring(
            self, "Monitoring", cluster=cluster, namespace=ns, environment=config.name, region=self.region,
            topic=observability.topic, heartbeat_topic=observability.heartbeat_topic, topic_key=observability.topic_key, log_groups=observability.log_groups,
            after=self.eks.addons["eks-pod-identity-agent"],
        )

        # The stores admit the cluster's security group (the nodes' and so the pods' ENIs),
        # by reference: no CIDR of a whole subnet. Rules live here, the stack that knows it.
        for name, (group, port) in {
            "Database": (data.database.security_group, POSTGRES_PORT),
            "Cache": (data.cache.security_group, REDIS_PORT),
            "Kafka": (data.kafka.security_group, KAFKA_IAM_TLS_PORT),
        }.items():
            ec2.CfnSecurityGroupIngress(
                self, f"{name}FromCluster", group_id=group.security_group_id, ip_protocol="tcp",
                from_port=port, to_port=port, source_security_group_id=cluster.cluster_security_group_id,
                description=f"{name} from the jobq EKS cluster",
            )

        namespace = cluster.add_manifest("Namespace", identity.namespace(ns, config.name))
        self.edge = Edge(
            self, "Edge", dns=config.dns, host=config.workload.ingress_host, namespace=ns, cluster=cluster,
            owner_id=config.prefix, after=self.eks.addons["eks-pod-identity-agent"],
        )

        # IRSA: each workload gets its own role, scoped to what it touches.
        self.server_account = eks.ServiceAccount(self, "ServerAccount", cluster=cluster, name=identity.SERVER_SA, namespace=ns)
        self.worker_account = eks.ServiceAccount(self, "WorkerAccount", cluster=cluster, name=identity.WORKER_SA, namespace=ns)
        self.secrets_account = eks.ServiceAccount(
            self, "SecretsReaderAccount", cluster=cluster, name=identity.SECRETS_READER_SA, namespace=ns
        )
        self.result_processor_account = eks.ServiceAccount(
            self, "ResultProcessorAccount", cluster=cluster, name=identity.RESULT_PROCESSOR_SA, namespace=ns
        )
        self.metrics_aggregator_account = eks.ServiceAccount(
            self, "MetricsAggregatorAccount", cluster=cluster, name=identity.METRICS_AGGREGATOR_SA, namespace=ns
        )
        for account in (
            self.server_account,
            self.worker_account,
            self.secrets_account,
            self.result_processor_account,
            self.metrics_aggregator_account,
        ):
            account.node.add_dependency(namespace)

        # The server publishes job events to MSK with IAM auth (AWS_MSK_IAM: OAUTHBEARER).
        kafka = data.kafka
        self.server_account.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["kafka-cluster:Connect", "kafka-cluster:DescribeCluster"], resources=[kafka.arn]
            )
        )
        self.server_account.add_to_principal_policy(
            iam.PolicyStatement(
                actions=[
                    "kafka-cluster:DescribeTopic",
                    "kafka-cluster:CreateTopic",
                    "kafka-cluster:WriteData",
                    "kafka-cluster:ReadData",
                ],
                resources=[kafka.topic_arn(f"{identity.KAFKA_TOPIC_PREFIX}*")],
            )
        )
        self.server_account.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["kafka-cluster:DescribeGroup", "kafka-cluster:AlterGroup"],
                resources=[kafka.group_arn("jobq-*")],
            )
        )

        # jq-result-processor only reads: its two topics and its own consumer group
        # (ReadData needs the group's AlterGroup; committed offsets for the lag, DescribeGroup).
        self.result_processor_account.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["kafka-cluster:Connect", "kafka-cluster:DescribeCluster"], resources=[kafka.arn]
            )
        )
        self.result_processor_account.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"],
                resources=[
                    kafka.topic_arn(identity.KAFKA_TOPIC_PREFIX + topic) for topic in identity.RESULT_PROCESSOR_TOPICS
                ],
            )
        )
        self.result_processor_account.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["kafka-cluster:DescribeGroup", "kafka-cluster:AlterGroup"],
                resources=[kafka.group_arn(identity.RESULT_PROCESSOR_GROUP)],
            )
        )

        # jq-metrics-aggregator only reads too: the job topics it counts, with its own group.
        self.metrics_aggregator_account.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["kafka-cluster:Connect", "kafka-cluster:DescribeCluster"], resources=[kafka.arn]
            )
        )
        self.metrics_aggregator_account.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"],
                resources=[
                    kafka.topic_arn(identity.KAFKA_TOPIC_PREFIX + topic) for topic in identity.METRICS_AGGREGATOR_TOPICS
                ],
            )
        )
        self.metrics_aggregator_account.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["kafka-cluster:DescribeGroup", "kafka-cluster:AlterGroup"],
                resources=[kafka.group_arn(identity.METRICS_AGGREGATOR_GROUP)],
            )
        )

        # External Secrets reads exactly the five jobq secrets, nothing else.
        for secret in (
            data.database.secret,
            data.database.app_secret,
            data.cache.auth_secret,
            data.api_token,
            data.console_secret,
        ):
            secret.grant_read(self.secrets_account)

        issuers = cluster.add_manifest("CertificateIssuers", *certificates.issuers(ns, config.name))
        issuers.node.add_dependency(namespace, self.eks.cert_manager)

        secret_store = cluster.add_manifest(
            "SecretStore", identity.secret_store(ns, region=self.region, service_account=identity.SECRETS_READER_SA)
        )
        secret_store.node.add_dependency(self.eks.external_secrets)
        secret_store.node.add_dependency(self.secrets_account)
