"""cdk-nag AwsSolutions findings that jobq accepts, each with the reason it is accepted.

cdk-nag 3 acknowledges findings through CDK's ``Validations.of(scope).acknowledge``;
every finding is acknowledged by its full id (``Rule[finding]``) on the narrowest
construct that owns it. Anything not listed here fails synth under the checks.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from aws_cdk import Acknowledgment, Stack, Validations
from constructs import IConstruct

from infra.config import EnvironmentConfig
from infra.k8s.identity import (
    KAFKA_TOPIC_PREFIX,
    METRICS_AGGREGATOR_GROUP,
    METRICS_AGGREGATOR_TOPICS,
    RESULT_PROCESSOR_GROUP,
    RESULT_PROCESSOR_TOPICS,
)

if TYPE_CHECKING:
    from infra.app import JobqStacks

PARTITION = "<AWS::Partition>"
LAMBDA_BASIC = f"AwsSolutions-IAM4[Policy::arn:{PARTITION}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]"
LAMBDA_VPC = f"AwsSolutions-IAM4[Policy::arn:{PARTITION}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole]"


def _ack(scope: IConstruct, reason: str, *ids: str) -> None:
    Validations.of(scope).acknowledge(*[Acknowledgment(id=i, reason=reason) for i in ids])


def _child(scope: IConstruct, path: str) -> IConstruct:
    node = scope
    for part in path.split("/"):
        node = node.node.find_child(part)
    return node


def _arn_token(stack: Stack, path: str) -> str:
    """How cdk-nag renders ``Fn::GetAtt <resource>.Arn`` for a construct under ``stack``."""
    resource = _child(stack, path)
    return f"<{stack.get_logical_id(resource)}.Arn>"  # type: ignore[arg-type]


def acknowledge(stacks: JobqStacks, config: EnvironmentConfig) -> None:
    _network(stacks)
    _data(stacks, config)
    _platform(stacks)


def _network(stacks: JobqStacks) -> None:
    vpc = stacks.network.network.vpc
    for endpoint in vpc.node.children:
        sg = endpoint.node.try_find_child("SecurityGroup")
        if sg is not None:
            _ack(
                sg,
                "Interface endpoint security groups admit HTTPS from the VPC CIDR only; the rule cannot "
                "evaluate the CIDR because it is a token, not because the group is open.",
                "AwsSolutions-EC23",
            )


def _data(stacks: JobqStacks, config: EnvironmentConfig) -> None:
    backup_plan = getattr(stacks.data, "backup_plan", None)
    if backup_plan is not None:
        _ack(_child(backup_plan.plan, "Database/Role"), "AWS Backup's own service-role policy for taking and "
             "restoring recovery points, as AWS Backup documents for a selection's role.",
             f"AwsSolutions-IAM4[Policy::arn:{PARTITION}:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForBackup]")
    data = stacks.data
    db = data.database.instance
    _ack(db, "PostgreSQL keeps 5432: clients and PgBouncer expect it; access is limited by security group "
         "to the private subnets, so a non-standard port adds no protection.", "AwsSolutions-RDS11")
    if not config.database.multi_az:
        _ack(db, f"{config.name} runs single-AZ PostgreSQL to save cost; staging and prod are Multi-AZ.", "AwsSolutions-RDS3")
    if not config.database.deletion_protection:
        _ack(db, f"{config.name} databases are disposable and torn down with the stack; prod has deletion protection.",
             "AwsSolutions-RDS10")
    _ack(_child(db, "MonitoringRole"), "The AWS-managed enhanced-monitoring policy is the documented way to grant RDS "
         "its monitoring role and is maintained by AWS.",
         f"AwsSolutions-IAM4[Policy::arn:{PARTITION}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole]")
    _ack(data.cache.replication_group, "Redis keeps 6379 for client compatibility; AUTH, TLS and a security group "
         "limited to the private subnets protect it.", "AwsSolutions-AEC5")
    _ack(data.cache.auth_secret, "ElastiCache has no managed rotation for AUTH tokens; rotation is a documented manual "
         "procedure (ModifyReplicationGroup with AuthTokenUpdateStrategy=ROTATE) in docs/deploy.md.", "AwsSolutions-SMG4")
    _ack(data.api_token, "The workers' bootstrap API key has no rotation Lambda: rotation moves the old value to "
         "previous_token, which the server accepts by its hash beside the new token until the workers have "
         "restarted (infra/k8s/workloads.py server_auth; docs/deploy.md 'API keys').", "AwsSolutions-SMG4")
    _ack(data.console_secret, "The console's session-signing key has no rotation Lambda: rotating it logs every "
         "console user out once, and Reloader restarts the servers with the new value (docs/deploy.md).",
         "AwsSolutions-SMG4")
    # The AwsCustomResource singleton that reads MSK's bootstrap brokers.
    for child in data.node.children:
        if child.node.id.startswith("AWS679f53fac002430cb0da5b7982bd2287"):
            _ack(child, "CDK's AwsCustomResource Lambda logs through the AWS-managed basic execution policy.", LAMBDA_BASIC)


def _platform(stacks: JobqStacks) -> None:
    platform = stacks.platform
    cluster = platform.eks.cluster
    region, account = platform.region, platform.account
    name = platform.eks.name

    _ack(_child(cluster, "Role"), "EKS requires AmazonEKSClusterPolicy on the cluster service role.",
         f"AwsSolutions-IAM4[Policy::arn:{PARTITION}:iam::aws:policy/AmazonEKSClusterPolicy]")
    _ack(_child(cluster, "NodegroupNodes/NodeGroupRole"), "Managed node groups need these AWS-managed policies "
         "(kubelet, VPC CNI, image pulls) as documented by EKS.",
         *(f"AwsSolutions-IAM4[Policy::arn:{PARTITION}:iam::aws:policy/{p}]"
           for p in ("AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly")))
    _ack(_child(cluster, "Resource/CreationRole/DefaultPolicy"), "CDK's cluster-creation role must manage the cluster "
         "and its sub-resources, whose names are only known after creation; Resource::* covers ec2/iam describe calls.",
         f"AwsSolutions-IAM5[Resource::arn:{PARTITION}:eks:{region}:{account}:cluster/{name}/*]",
         f"AwsSolutions-IAM5[Resource::arn:{PARTITION}:eks:{region}:{account}:fargateprofile/{name}/*]",
         "AwsSolutions-IAM5[Resource::*]")
    handler = _child(cluster, "KubectlHandlerRole")
    _ack(handler, "CDK's kubectl handler runs in the VPC (private endpoint) and pulls Helm charts; these are the "
         "AWS-managed policies CDK attaches for that.", LAMBDA_BASIC, LAMBDA_VPC,
         f"AwsSolutions-IAM4[Policy::arn:{PARTITION}:iam::aws:policy/AmazonEC2ContainerRegistryPullOnly]")
    for finding in _ecr_public_policy_findings(platform):
        _ack(handler, "CDK attaches public-ECR read only where the partition has ECR Public, to pull OCI Helm charts.", finding)

    _ack(platform.eks.ebs_csi_role, "The EBS CSI driver's own AWS-managed policy, as the EKS add-on documents; "
         "it creates and attaches volumes whose ids it learns at run time.",
         f"AwsSolutions-IAM4[Policy::arn:{PARTITION}:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy]")
    _ack(_child(platform.monitoring.alertmanager_role, "DefaultPolicy"), "SNS publishes to a KMS-encrypted topic "
         "with data keys of that one key; GenerateDataKey* names the two variants SNS calls.",
         "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]")

    _ack(_child(platform.edge.external_dns_role, "DefaultPolicy"), "external-dns finds its zone with "
         "route53:ListHostedZones, which takes no resource; changes are limited to the one zone's ARN.",
         "AwsSolutions-IAM5[Resource::*]")

    _ack(_child(platform.eks.autoscaler_role, "DefaultPolicy"), "The Cluster Autoscaler discovers node groups by "
         "describing every ASG (describe calls take no resource); changes are limited by the cluster's ASG tag.",
         "AwsSolutions-IAM5[Resource::*]")

    alb_sa_policy = None
    for child in platform.node.children:
        if child.node.id.endswith("-AlbController"):
            alb_sa_policy = _child(child, "alb-sa/Role/DefaultPolicy")
    assert alb_sa_policy is not None, "AWS Load Balancer Controller not found in the platform stack"
    elb = f"arn:{PARTITION}:elasticloadbalancing:*:*"
    _ack(alb_sa_policy, "The AWS Load Balancer Controller creates and tags load balancers, target groups and security "
         "groups whose names it chooses at run time; this is the upstream controller's published IAM policy.",
         "AwsSolutions-IAM5[Resource::*]",
         f"AwsSolutions-IAM5[Resource::arn:{PARTITION}:ec2:*:*:security-group/*]",
         *(f"AwsSolutions-IAM5[Resource::{elb}:{r}]" for r in (
             "loadbalancer/app/*/*", "loadbalancer/net/*/*", "targetgroup/*/*",
             "listener-rule/app/*/*/*", "listener-rule/net/*/*/*", "listener/app/*/*/*", "listener/net/*/*/*")))

    kafka_prefix = f"arn:{PARTITION}:kafka:{region}:{account}"
    kafka_name = stacks.data.kafka.cluster_name
    _ack(platform.server_account.role, "The server may create and use only jobq.* topics and jobq-* groups on its own "
         "cluster; the UUID segment of the ARN is unknown until the cluster exists.",
         f"AwsSolutions-IAM5[Resource::{kafka_prefix}:topic/{kafka_name}/*/{KAFKA_TOPIC_PREFIX}*]",
         f"AwsSolutions-IAM5[Resource::{kafka_prefix}:group/{kafka_name}/*/jobq-*]")
    _ack(platform.result_processor_account.role, "jq-result-processor may read only its two topics with its own "
         "consumer group; the only wildcard is the ARN's cluster UUID segment, unknown until the cluster exists.",
         *(f"AwsSolutions-IAM5[Resource::{kafka_prefix}:topic/{kafka_name}/*/{KAFKA_TOPIC_PREFIX}{topic}]"
           for topic in RESULT_PROCESSOR_TOPICS),
         f"AwsSolutions-IAM5[Resource::{kafka_prefix}:group/{kafka_name}/*/{RESULT_PROCESSOR_GROUP}]")
    _ack(platform.metrics_aggregator_account.role, "jq-metrics-aggregator may read only the job topics it counts "
         "with its own consumer group; the only wildcard is the ARN's cluster UUID segment, unknown until the "
         "cluster exists.",
         *(f"AwsSolutions-IAM5[Resource::{kafka_prefix}:topic/{kafka_name}/*/{KAFKA_TOPIC_PREFIX}{topic}]"
           for topic in METRICS_AGGREGATOR_TOPICS),
         f"AwsSolutions-IAM5[Resource::{kafka_prefix}:group/{kafka_name}/*/{METRICS_AGGREGATOR_GROUP}]")

    _cdk_providers(platform)


def _ecr_public_policy_findings(platform: Stack) -> list[str]:
    # The finding id embeds the Fn::If that CDK writes; it is rendered from the
    # role's own properties so it follows whatever CDK generates.
    role = _child(platform.eks.cluster, "KubectlHandlerRole/Resource")  # type: ignore[attr-defined]
    arns = platform.resolve(role.managed_policy_arns)  # type: ignore[attr-defined]
    return [
        f"AwsSolutions-IAM4[Policy::{json.dumps(a, separators=(',', ':'))}]" for a in arns if isinstance(a, dict)
    ]


def _cdk_providers(platform: Stack) -> None:
    """CDK's own custom-resource providers for EKS (cluster resource and kubectl), in nested stacks."""
    reason_iam4 = "CDK-managed provider Lambdas log through the AWS-managed basic execution policy."
    reason_iam5 = "CDK's provider framework invokes its own handler function versions (ARN:*)."

    provider = platform.node.find_child("@aws-cdk--aws-eks.ClusterResourceProvider")
    for fn in ("OnEventHandler", "IsCompleteHandler", "Provider/framework-onEvent", "Provider/framework-isComplete",
               "Provider/framework-onTimeout"):
        _ack(_child(provider, f"{fn}/ServiceRole"), reason_iam4, LAMBDA_BASIC)
    handlers = [_arn_token(provider, "IsCompleteHandler/Resource"), _arn_token(provider, "OnEventHandler/Resource")]  # type: ignore[arg-type]
    for fn in ("framework-onEvent", "framework-isComplete", "framework-onTimeout"):
        _ack(_child(provider, f"Provider/{fn}/ServiceRole/DefaultPolicy"), reason_iam5,
             *(f"AwsSolutions-IAM5[Resource::{h}:*]" for h in handlers))
    waiter = _child(provider, "Provider/waiter-state-machine")
    _ack(_child(waiter, "Role/DefaultPolicy"), reason_iam5,
         *(f"AwsSolutions-IAM5[Resource::{_arn_token(provider, p)}:*]"  # type: ignore[arg-type]
           for p in ("Provider/framework-isComplete/Resource", "Provider/framework-onTimeout/Resource")))
    _ack(waiter, "CDK's internal waiter state machine only polls cluster creation; its logging and tracing are not "
         "configurable through the EKS construct.", "AwsSolutions-SF1", "AwsSolutions-SF2")

    kubectl = platform.node.find_child("@aws-cdk--aws-eks.KubectlProvider")
    _ack(_child(kubectl, "Handler"), "The kubectl handler's runtime is pinned by aws-cdk-lib together with its "
         "kubectl layer; it moves when aws-cdk-lib is upgraded.", "AwsSolutions-L1")
    _ack(_child(kubectl, "Provider/framework-onEvent/ServiceRole"), reason_iam4, LAMBDA_BASIC, LAMBDA_VPC)
    _ack(_child(kubectl, "Provider/framework-onEvent/ServiceRole/DefaultPolicy"), reason_iam5,
         f"AwsSolutions-IAM5[Resource::{_arn_token(kubectl, 'Handler/Resource')}:*]")  # type: ignore[arg-type]
