"""Amazon MSK for job events: TLS between clients and brokers, IAM authentication."""

from __future__ import annotations

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from aws_cdk import aws_msk as msk
from aws_cdk import custom_resources as cr
from constructs import Construct

from infra.components.keys import data_key
from infra.config import KafkaConfig

KAFKA_IAM_TLS_PORT = 9098


class KafkaCluster(Construct):
    """A provisioned MSK cluster, one broker set per AZ, reachable only with IAM over TLS."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: KafkaConfig,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        name: str,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        self.cluster_name = name

        self.security_group = ec2.SecurityGroup(
            self, "SecurityGroup", vpc=vpc, description="jobq MSK: IAM/TLS listener for the private (EKS) subnets",
            allow_all_outbound=False,
        )
        # Clients are admitted by security group, not CIDR: the platform stack adds a rule
        # from the EKS cluster security group. (The description predates that; changing it
        # would replace the group.)

        key = data_key(self, "Key", description="jobq MSK data volume encryption", store_policy=config.removal_policy)
        broker_logs = logs.LogGroup(self, "BrokerLogs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY)
        client_subnets = vpc.select_subnets(subnet_group_name=subnets.subnet_group_name).subnet_ids

        # The construct id "Cluster" must never change: a replaced MSK cluster starts
        # empty and every consumer's offsets are gone.
        self.cluster = msk.CfnCluster(
            self,
            "Cluster",
            cluster_name=name,
            kafka_version=config.kafka_version,
            number_of_broker_nodes=config.brokers,
            broker_node_group_info=msk.CfnCluster.BrokerNodeGroupInfoProperty(
                instance_type=config.instance_type,
                client_subnets=client_subnets,
                security_groups=[self.security_group.security_group_id],
                storage_info=msk.CfnCluster.StorageInfoProperty(
                    ebs_storage_info=msk.CfnCluster.EBSStorageInfoProperty(volume_size=config.volume_size_gib)
                ),
            ),
            client_authentication=msk.CfnCluster.ClientAuthenticationProperty(
                sasl=msk.CfnCluster.SaslProperty(iam=msk.CfnCluster.IamProperty(enabled=True)),
                unauthenticated=msk.CfnCluster.UnauthenticatedProperty(enabled=False),
            ),
            encryption_info=msk.CfnCluster.EncryptionInfoProperty(
                encryption_at_rest=msk.CfnCluster.EncryptionAtRestProperty(data_volume_kms_key_id=key.key_arn),
                encryption_in_transit=msk.CfnCluster.EncryptionInTransitProperty(client_broker="TLS", in_cluster=True),
            ),
            enhanced_monitoring="PER_BROKER",
            logging_info=msk.CfnCluster.LoggingInfoProperty(
                broker_logs=msk.CfnCluster.BrokerLogsProperty(
                    cloud_watch_logs=msk.CfnCluster.CloudWatchLogsProperty(enabled=True, log_group=broker_logs.log_group_name)
                )
            ),
        )
        self.cluster.apply_removal_policy(config.removal_policy)

        # Provisioned MSK exposes no bootstrap string as a CloudFormation attribute,
        # so one read-only API call fetches it at deploy time.
        brokers = cr.AwsCustomResource(
            self,
            "BootstrapBrokers",
            on_update=cr.AwsSdkCall(
                service="Kafka",
                action="getBootstrapBrokers",
                parameters={"ClusterArn": self.cluster.attr_arn},
                physical_resource_id=cr.PhysicalResourceId.of(self.cluster.attr_arn),
            ),
            policy=cr.AwsCustomResourcePolicy.from_sdk_calls(resources=[self.cluster.attr_arn]),
            install_latest_aws_sdk=False,
        )
        self.bootstrap_brokers = brokers.get_response_field("BootstrapBrokerStringSaslIam")

    @property
    def arn(self) -> str:
        return self.cluster.attr_arn

    def topic_arn(self, topic: str = "*") -> str:
        """ARN pattern of topics in this cluster (the IAM resource form kafka-cluster:* actions use)."""
        return self._child_arn("topic", topic)

    def group_arn(self, group: str = "*") -> str:
        return self._child_arn("group", group)

    def _child_arn(self, kind: str, name: str) -> str:
        # The cluster's UUID segment is wildcarded: it is only known after creation,
        # and the cluster name is already unique per account and region.
        stack = Stack.of(self)
        return f"arn:{stack.partition}:kafka:{stack.region}:{stack.account}:{kind}/{self.cluster_name}/*/{name}"
