"""The gRPC host's name and certificate (ADR 0019): a DNS-validated ACM certificate in the
environment's own Route 53 zone, and external-dns, which points the host's record at the
ALB the AWS Load Balancer Controller makes for jq-server's Ingress.

The ALB is the controller's, not CloudFormation's, so its address is known only once the
Ingress is reconciled: the record is kept by the controller that sees that address.
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_eks as eks
from aws_cdk import aws_iam as iam
from aws_cdk import aws_route53 as route53
from constructs import Construct

from infra.config import DnsConfig

EXTERNAL_DNS_CHART = ("external-dns", "https://kubernetes-sigs.github.io/external-dns/", "1.19.0")
EXTERNAL_DNS_NAMESPACE = "external-dns"
EXTERNAL_DNS_SA = "external-dns"


class InvalidHostError(ValueError):
    """The gRPC host is not a name inside the environment's hosted zone."""


def in_zone(host: str, zone_name: str) -> bool:
    host, zone = host.rstrip(".").lower(), zone_name.rstrip(".").lower()
    return host.endswith("." + zone) and host != zone


class Edge(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        dns: DnsConfig,
        host: str,
        namespace: str,
        cluster: eks.Cluster,
        owner_id: str,
        after: Construct,
    ) -> None:
        super().__init__(scope, construct_id)
        if not in_zone(host, dns.zone_name):
            raise InvalidHostError(
                f"ingress_host {host!r} is not inside the hosted zone {dns.zone_name!r} (DnsConfig): "
                "neither its certificate nor its record could be made there"
            )
        self.zone = route53.HostedZone.from_hosted_zone_attributes(
            self, "Zone", hosted_zone_id=dns.zone_id, zone_name=dns.zone_name
        )
        # ACM writes the validation CNAME into the zone and waits until it is issued; it
        # renews by itself for as long as that record stays.
        self.certificate = acm.Certificate(
            self, "Certificate", domain_name=host,
            validation=acm.CertificateValidation.from_dns(self.zone),
        )

        # external-dns (Pod Identity) may change records of this zone only.
        role = iam.Role(
            self, "ExternalDnsRole", assumed_by=iam.ServicePrincipal("pods.eks.amazonaws.com"),
            description=f"{owner_id} external-dns (Pod Identity): records of {dns.zone_name}",
        )
        role.assume_role_policy.add_statements(  # type: ignore[union-attr]
            iam.PolicyStatement(actions=["sts:TagSession"], principals=[iam.ServicePrincipal("pods.eks.amazonaws.com")])
        )
        role.add_to_principal_policy(iam.PolicyStatement(
            actions=["route53:ChangeResourceRecordSets", "route53:ListResourceRecordSets", "route53:ListTagsForResource"],
            resources=[self.zone.hosted_zone_arn],
        ))
        role.add_to_principal_policy(iam.PolicyStatement(actions=["route53:ListHostedZones"], resources=["*"]))
        self.external_dns_role = role
        association = eks.CfnPodIdentityAssociation(
            self, "ExternalDnsIdentity", cluster_name=cluster.cluster_name, namespace=EXTERNAL_DNS_NAMESPACE,
            service_account=EXTERNAL_DNS_SA, role_arn=role.role_arn,
        )
        association.node.add_dependency(after)
        name, repository, version = EXTERNAL_DNS_CHART
        self.external_dns = cluster.add_helm_chart(
            "ExternalDns", chart=name, repository=repository, version=version,
            namespace=EXTERNAL_DNS_NAMESPACE, create_namespace=True,
            values={
                "provider": {"name": "aws"},
                "env": [{"name": "AWS_DEFAULT_REGION", "value": Stack.of(self).region}],
                "serviceAccount": {"create": True, "name": EXTERNAL_DNS_SA},
                # Only the jobq namespace's Ingresses, only this zone; records it did not
                # create (no TXT of this owner) are never touched, and none is deleted.
                "sources": ["ingress"],
                "namespaced": False,
                "domainFilters": [dns.zone_name],
                "policy": "upsert-only",
                "registry": "txt",
                "txtOwnerId": owner_id,
                "extraArgs": [f"--zone-id-filter={dns.zone_id}", f"--namespace={namespace}", "--aws-zone-type=public"],
            },
        )
        self.external_dns.node.add_dependency(association)
