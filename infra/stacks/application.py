"""Application stack: the jobq workloads inside the cluster. Redeployed for every new image."""

from __future__ import annotations

from typing import Any

from aws_cdk import Stack
from aws_cdk import aws_eks as eks
from constructs import Construct

from infra.components.monitoring import MONITORING_NAMESPACE, PROMETHEUS_URL
from infra.config import EnvironmentConfig
from infra.k8s import certificates, workloads
from infra.stacks.data import DataStack
from infra.stacks.platform import PlatformStack


class ApplicationStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        data: DataStack,
        platform: PlatformStack,
        image_tag: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        ns = config.namespace
        cluster = platform.eks.cluster
        prefix = config.prefix

        endpoints = workloads.Endpoints(
            # Secret names are fixed strings in the data stack, so only the
            # addresses below become cross-stack references.
            database_secret_name=f"{prefix}/database",
            database_app_secret_name=f"{prefix}/database-app",
            api_token_secret_name=f"{prefix}/api-token",
            console_secret_name=f"{prefix}/console",
            kafka_bootstrap=data.kafka.bootstrap_brokers,
            region=self.region,
            redis_address=data.cache.address,
            redis_secret_name=f"{prefix}/redis-auth",
        )
        images = workloads.Images(
            server=platform.registry.image("jq-server", image_tag),
            worker=platform.registry.image("jq-worker", image_tag),
            pgbouncer=config.workload.pgbouncer_image,
        )

        def manifest(construct_id: str, objects: list[dict[str, Any]]) -> eks.KubernetesManifest:
            return eks.KubernetesManifest(self, construct_id, cluster=cluster, manifest=objects, overwrite=True)

        settings = manifest("Settings", [workloads.config_map(ns, endpoints)])
        tls = manifest("ServerCertificate", [certificates.server_certificate(ns)])
        secrets = manifest("Secrets", workloads.external_secrets(ns, endpoints))
        pgbouncer = manifest("PgBouncer", workloads.pgbouncer(ns, config.workload, images))
        server = manifest("Server", workloads.server(
            ns, config.workload, images, certificate_arn=platform.edge.certificate.certificate_arn,
        ))
        worker = manifest("Worker", workloads.worker(ns, config.workload, images, prometheus_url=PROMETHEUS_URL))
        result_processor = manifest("ResultProcessor", workloads.result_processor(ns, config.workload, images))
        metrics_aggregator = manifest("MetricsAggregator", workloads.metrics_aggregator(ns, config.workload, images))

        manifest("NetworkPolicies", workloads.network_policies(
            ns, vpc_cidr=config.network.cidr, monitoring_namespace=MONITORING_NAMESPACE,
        ))

        pgbouncer.node.add_dependency(secrets)
        for workload in (server, worker):
            workload.node.add_dependency(settings, secrets, pgbouncer, tls)
        # Needs only the ConfigMap and Kafka, not the database.
        result_processor.node.add_dependency(settings)
        metrics_aggregator.node.add_dependency(settings)
