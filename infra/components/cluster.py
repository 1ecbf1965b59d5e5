"""EKS: the control plane, managed node group and the controllers the application relies on."""

from __future__ import annotations

from typing import Any

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks as eks
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk.lambda_layer_kubectl_v33 import KubectlV33Layer
from constructs import Construct

from infra.config import ClusterConfig

# Kubernetes 1.33 is the newest version that both aws-cdk-lib's KubernetesVersion
# and a published kubectl Lambda layer (aws-cdk.lambda-layer-kubectl-v33) cover
# with a tested pairing here; bump both together.
_KUBERNETES_VERSIONS = {"1.33": (eks.KubernetesVersion.V1_33, KubectlV33Layer)}

# Helm charts the platform installs. Pinned so a deploy is repeatable; bump deliberately.
KEDA_CHART = ("keda", "https://kedacore.github.io/charts", "2.17.2")
EXTERNAL_SECRETS_CHART = ("external-secrets", "https://charts.external-secrets.io", "0.19.2")
PROMETHEUS_CHART = ("prometheus", "https://prometheus-community.github.io/helm-charts", "27.39.0")

MONITORING_NAMESPACE = "monitoring"
PROMETHEUS_URL = f"http://prometheus-server.{MONITORING_NAMESPACE}.svc.cluster.local"


class JobqCluster(Construct):
    """A private-endpoint EKS cluster with one managed node group and the platform controllers.

    Controllers installed: AWS Load Balancer Controller (ALB Ingress for gRPC),
    KEDA (worker autoscaling), External Secrets Operator (Secrets Manager to
    Kubernetes Secrets), and a Prometheus server that scrapes jobq pods and
    answers KEDA's queries.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: ClusterConfig,
        name: str,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
    ) -> None:
        super().__init__(scope, construct_id)
        self.name = name
        version, layer_cls = _KUBERNETES_VERSIONS[config.kubernetes_version]

        secrets_key = kms.Key(self, "SecretsKey", enable_key_rotation=True, description=f"{name} Kubernetes secrets envelope encryption")
        # Platform engineers assume this role for kubectl; it is mapped to system:masters.
        self.admin_role = iam.Role(
            self, "AdminRole", assumed_by=iam.AccountRootPrincipal(), description=f"kubectl admin for {name}"
        )

        self.cluster = eks.Cluster(
            self,
            "Cluster",
            cluster_name=name,
            version=version,
            kubectl_layer=layer_cls(self, "KubectlLayer"),
            vpc=vpc,
            vpc_subnets=[subnets],
            # No public API endpoint: kubectl runs from inside the VPC (the CDK
            # kubectl handler is placed there automatically) or through a bastion/VPN.
            endpoint_access=eks.EndpointAccess.PRIVATE,
            authentication_mode=eks.AuthenticationMode.API_AND_CONFIG_MAP,
            default_capacity=0,
            masters_role=self.admin_role,
            secrets_encryption_key=secrets_key,
            cluster_logging=list(eks.ClusterLoggingTypes),
            alb_controller=eks.AlbControllerOptions(version=eks.AlbControllerVersion.V2_17_1),
            deletion_protection=config.deletion_protection,
        )

        self.nodegroup = self.cluster.add_nodegroup_capacity(
            "Nodes",
            instance_types=[ec2.InstanceType(t) for t in config.instance_types],
            min_size=config.min_nodes,
            desired_size=config.desired_nodes,
            max_size=config.max_nodes,
            ami_type=eks.NodegroupAmiType.AL2023_X86_64_STANDARD,
            capacity_type=eks.CapacityType.ON_DEMAND,
            subnets=subnets,
            disk_size=50,
            labels={"jobq.io/pool": "general"},
        )

        self.keda = self._chart("Keda", KEDA_CHART, namespace="keda", values={})
        self.external_secrets = self._chart(
            "ExternalSecrets", EXTERNAL_SECRETS_CHART, namespace="external-secrets", values={"installCRDs": True}
        )
        self.prometheus = self._chart(
            "Prometheus",
            PROMETHEUS_CHART,
            namespace=MONITORING_NAMESPACE,
            values={
                # Only the server: alerting lives in CloudWatch and in the alerts/ rules.
                "alertmanager": {"enabled": False},
                "prometheus-pushgateway": {"enabled": False},
                "server": {"retention": "7d", "persistentVolume": {"enabled": False}},
            },
        )

    def _chart(self, construct_id: str, chart: tuple[str, str, str], *, namespace: str, values: dict[str, Any]) -> eks.HelmChart:
        name, repository, version = chart
        return self.cluster.add_helm_chart(
            construct_id,
            chart=name,
            release=name,
            repository=repository,
            version=version,
            namespace=namespace,
            create_namespace=True,
            values=values,
            wait=True,
        )
