"""EKS: the control plane, managed node group and the controllers the application relies on."""

from __future__ import annotations

from typing import Any

from aws_cdk import Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks as eks
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk.lambda_layer_kubectl_v36 import KubectlV36Layer
from constructs import Construct

from infra.config import ClusterConfig

# Kubernetes 1.36: the newest version the pinned aws-cdk-lib (2.275.0) names in
# KubernetesVersion, with its kubectl Lambda layer (aws-cdk.lambda-layer-kubectl-v36).
# Bump both together, and KUBERNETES_SCHEMA_VERSION's manifests are validated against it
# (tests/infra/test_manifest_schemas.py).
_KUBERNETES_VERSIONS = {"1.36": (eks.KubernetesVersion.V1_36, KubectlV36Layer)}

# EKS managed add-ons: AWS patches them with the control plane. Versions are left to
# EKS's default for the cluster version (no pin that would go stale on an upgrade);
# OVERWRITE takes over the self-managed copies EKS installs at creation.
MANAGED_ADDONS = ("vpc-cni", "coredns", "kube-proxy", "aws-ebs-csi-driver", "eks-pod-identity-agent")

# Helm charts the platform installs. Pinned so a deploy is repeatable; bump deliberately.
KEDA_CHART = ("keda", "https://kedacore.github.io/charts", "2.17.2")
EXTERNAL_SECRETS_CHART = ("external-secrets", "https://charts.external-secrets.io", "0.19.2")
CLUSTER_AUTOSCALER_CHART = ("cluster-autoscaler", "https://kubernetes.github.io/autoscaler", "9.52.1")
CERT_MANAGER_CHART = ("cert-manager", "https://charts.jetstack.io", "v1.19.1")
RELOADER_CHART = ("reloader", "https://stakater.github.io/stakater-charts", "2.2.3")
CLUSTER_AUTOSCALER_SA = "cluster-autoscaler"


class JobqCluster(Construct):
    """A private-endpoint EKS cluster with one managed node group and the platform controllers.

    Controllers installed: AWS Load Balancer Controller (ALB Ingress for gRPC),
    KEDA (worker autoscaling), External Secrets Operator (Secrets Manager to
    Kubernetes Secrets), the Cluster Autoscaler (nodes) and Stakater Reloader (rolling
    restarts when a Secret a Deployment reads changes). Prometheus, Alertmanager and Fluent Bit are the
    monitoring construct's (infra/components/monitoring.py).
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

        self.addons = {
            name: eks.CfnAddon(
                self,
                f"Addon-{name}",
                cluster_name=self.cluster.cluster_name,
                addon_name=name,
                resolve_conflicts="OVERWRITE",
            )
            for name in MANAGED_ADDONS
        }
        # The EBS CSI controller calls EC2 for volumes: its own role, through EKS Pod Identity.
        self.ebs_csi_role = iam.Role(
            self,
            "EbsCsiRole",
            assumed_by=iam.ServicePrincipal("pods.eks.amazonaws.com"),
            managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name("service-role/AmazonEBSCSIDriverPolicy")],
            description=f"{name} EBS CSI controller (Pod Identity)",
        )
        self.ebs_csi_role.assume_role_policy.add_statements(  # type: ignore[union-attr]
            iam.PolicyStatement(
                actions=["sts:TagSession"], principals=[iam.ServicePrincipal("pods.eks.amazonaws.com")]
            )
        )
        ebs_identity = eks.CfnPodIdentityAssociation(
            self,
            "EbsCsiIdentity",
            cluster_name=self.cluster.cluster_name,
            namespace="kube-system",
            service_account="ebs-csi-controller-sa",
            role_arn=self.ebs_csi_role.role_arn,
        )
        ebs_identity.node.add_dependency(self.addons["eks-pod-identity-agent"])
        self.addons["aws-ebs-csi-driver"].node.add_dependency(ebs_identity)
        # coredns and the EBS CSI controller run as pods: they need nodes first.
        for name in ("coredns", "aws-ebs-csi-driver"):
            self.addons[name].node.add_dependency(self.nodegroup)

        self.keda = self._chart("Keda", KEDA_CHART, namespace="keda", values={})
        # Nodes scale with pending pods, within the node group's min and max (the config's
        # bounds): the Cluster Autoscaler changes the managed node group's ASG, which EKS
        # tags for its auto-discovery.
        self.autoscaler_role = iam.Role(
            self, "ClusterAutoscalerRole", assumed_by=iam.ServicePrincipal("pods.eks.amazonaws.com"),
            description=f"{name} Cluster Autoscaler (Pod Identity)",
        )
        self.autoscaler_role.assume_role_policy.add_statements(  # type: ignore[union-attr]
            iam.PolicyStatement(actions=["sts:TagSession"], principals=[iam.ServicePrincipal("pods.eks.amazonaws.com")])
        )
        self.autoscaler_role.add_to_principal_policy(iam.PolicyStatement(
            actions=[
                "autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeAutoScalingInstances",
                "autoscaling:DescribeLaunchConfigurations", "autoscaling:DescribeScalingActivities",
                "autoscaling:DescribeTags", "ec2:DescribeImages", "ec2:DescribeInstanceTypes",
                "ec2:DescribeLaunchTemplateVersions", "ec2:GetInstanceTypesFromInstanceRequirements",
                "eks:DescribeNodegroup",
            ],
            resources=["*"],
        ))
        # Changes only this cluster's groups: the tag EKS puts on its node groups' ASGs.
        self.autoscaler_role.add_to_principal_policy(iam.PolicyStatement(
            actions=["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"],
            resources=["*"],
            conditions={"StringEquals": {f"aws:ResourceTag/k8s.io/cluster-autoscaler/{name}": "owned"}},
        ))
        autoscaler_identity = eks.CfnPodIdentityAssociation(
            self, "ClusterAutoscalerIdentity", cluster_name=self.cluster.cluster_name, namespace="kube-system",
            service_account=CLUSTER_AUTOSCALER_SA, role_arn=self.autoscaler_role.role_arn,
        )
        autoscaler_identity.node.add_dependency(self.addons["eks-pod-identity-agent"])
        self.cluster_autoscaler = self._chart(
            "ClusterAutoscaler", CLUSTER_AUTOSCALER_CHART, namespace="kube-system",
            values={
                "cloudProvider": "aws",
                "awsRegion": Stack.of(self).region,
                "autoDiscovery": {"clusterName": name},
                "rbac": {"serviceAccount": {"create": True, "name": CLUSTER_AUTOSCALER_SA}},
                "extraArgs": {"balance-similar-node-groups": True, "expander": "least-waste"},
            },
        )
        self.cluster_autoscaler.node.add_dependency(autoscaler_identity)
        self.reloader = self._chart("Reloader", RELOADER_CHART, namespace="reloader", values={})
        # Issues the in-cluster gRPC certificates (infra/k8s/certificates.py).
        self.cert_manager = self._chart(
            "CertManager", CERT_MANAGER_CHART, namespace="cert-manager", values={"crds": {"enabled": True}}
        )

        self.external_secrets = self._chart(
            "ExternalSecrets", EXTERNAL_SECRETS_CHART, namespace="external-secrets", values={"installCRDs": True}
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
