"""In-cluster monitoring (ADR 0012): Prometheus with jobq's rules, Alertmanager publishing to
the alarm topic, and Fluent Bit shipping every jobq pod's log lines to its log group.

- Prometheus scrapes each jobq workload as a job of its own name (``jq-server``,
  ``jq-worker``, ...), the ``job`` label the rules in ``alerts/jobq.rules.yml`` select on,
  with ``namespace`` and ``pod`` labels (KEDA's query filters on ``namespace``). It loads
  that rule file unchanged, and answers KEDA's queries.
- Alertmanager routes every alert to the SNS topic whose subscriptions are the
  environment's pagers (``ObservabilityConfig.pagers``), signing with SigV4 as its own
  role (EKS Pod Identity), allowed only ``sns:Publish`` on that topic, except the
  always-firing ``Watchdog``, which it re-sends every minute to the heartbeat topic: the
  dead-man's switch that pages when Prometheus or Alertmanager stops.
- Fluent Bit (aws-for-fluent-bit) tails only the jobq namespace's container logs and writes
  each pod's lines to ``/jobq/<env>/<app.kubernetes.io/name>``, the log groups the
  observability stack creates with their retention (it never creates groups itself).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from aws_cdk import aws_eks as eks
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from constructs import Construct

RULES_FILE = Path(__file__).resolve().parents[2] / "alerts" / "jobq.rules.yml"

PROMETHEUS_CHART = ("prometheus", "https://prometheus-community.github.io/helm-charts", "27.39.0")
FLUENT_BIT_CHART = ("aws-for-fluent-bit", "https://aws.github.io/eks-charts", "0.2.1")
MONITORING_NAMESPACE = "monitoring"
PROMETHEUS_URL = f"http://prometheus-server.{MONITORING_NAMESPACE}.svc.cluster.local"
ALERTMANAGER_SA = "prometheus-alertmanager"
FLUENT_BIT_NAMESPACE = "logging"
FLUENT_BIT_SA = "aws-for-fluent-bit"
# The workloads Prometheus scrapes, each on its container port named "http".
SCRAPED = ("jq-server", "jq-worker", "jq-result-processor", "jq-metrics-aggregator")
# Where lines of a pod without an app.kubernetes.io/name label go.
UNLABELLED_LOG_GROUP = "other"


def scrape_configs(namespace: str) -> list[dict[str, Any]]:
    return [
        {
            "job_name": component,
            "kubernetes_sd_configs": [{"role": "pod", "namespaces": {"names": [namespace]}}],
            "relabel_configs": [
                {
                    "source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_name"],
                    "regex": component,
                    "action": "keep",
                },
                {"source_labels": ["__meta_kubernetes_pod_container_port_name"], "regex": "http", "action": "keep"},
                {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
                {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
            ],
        }
        for component in SCRAPED
    ]


WATCHDOG_ALERT = "Watchdog"
# How often Alertmanager re-sends the always-firing Watchdog to the heartbeat topic: well
# inside the CloudWatch alarm's window (infra/stacks/observability.py), so one late
# notification does not page.
HEARTBEAT_EVERY = "1m"


def alertmanager_config(topic_arn: str, heartbeat_topic_arn: str, region: str) -> dict[str, Any]:
    return {
        "route": {
            "receiver": "pager",
            "group_by": ["alertname", "queue"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
            # The dead-man's switch: the Watchdog goes to the heartbeat topic only, never to
            # a pager; a CloudWatch alarm pages when that topic stops hearing it.
            "routes": [
                {
                    "matchers": [f'alertname="{WATCHDOG_ALERT}"'],
                    "receiver": "heartbeat",
                    "group_wait": "0s",
                    "group_interval": HEARTBEAT_EVERY,
                    "repeat_interval": HEARTBEAT_EVERY,
                    "continue": False,
                }
            ],
        },
        "receivers": [
            {
                "name": "pager",
                "sns_configs": [{"topic_arn": topic_arn, "sigv4": {"region": region}, "send_resolved": True}],
            },
            {
                "name": "heartbeat",
                "sns_configs": [{"topic_arn": heartbeat_topic_arn, "sigv4": {"region": region}, "send_resolved": False}],
            },
        ],
    }


def prometheus_values(namespace: str, topic_arn: str, heartbeat_topic_arn: str, region: str) -> dict[str, Any]:
    return {
        "alertmanager": {
            "enabled": True,
            "serviceAccount": {"create": True, "name": ALERTMANAGER_SA},
            "persistence": {"enabled": False},
            "config": alertmanager_config(topic_arn, heartbeat_topic_arn, region),
        },
        "prometheus-pushgateway": {"enabled": False},
        "server": {"retention": "7d", "persistentVolume": {"enabled": False}},
        # The chart's server config lists /etc/config/alerting_rules.yml in rule_files.
        "serverFiles": {"alerting_rules.yml": yaml.safe_load(RULES_FILE.read_text())},
        "extraScrapeConfigs": yaml.safe_dump(scrape_configs(namespace), sort_keys=False),
    }


def fluent_bit_values(namespace: str, environment: str, region: str) -> dict[str, Any]:
    return {
        "serviceAccount": {"create": True, "name": FLUENT_BIT_SA},
        # Container log files are <pod>_<namespace>_<container>-<id>.log.
        "input": {"path": f"/var/log/containers/*_{namespace}_*.log"},
        "cloudWatch": {"enabled": False},
        "cloudWatchLogs": {
            "enabled": True,
            "region": region,
            "logGroupName": f"/jobq/{environment}/{UNLABELLED_LOG_GROUP}",
            "logGroupTemplate": f"/jobq/{environment}/$kubernetes['labels']['app.kubernetes.io/name']",
            "logStreamTemplate": "$kubernetes['pod_name'].$kubernetes['container_name']",
            "autoCreateGroup": False,
        },
        "firehose": {"enabled": False},
        "kinesis": {"enabled": False},
        "elasticsearch": {"enabled": False},
    }


def pod_role(scope: Construct, construct_id: str, *, cluster: eks.ICluster, namespace: str,
             service_account: str, description: str) -> iam.Role:
    """An IAM role for one service account through EKS Pod Identity (no OIDC conditions)."""
    principal = iam.ServicePrincipal("pods.eks.amazonaws.com")
    role = iam.Role(scope, construct_id, assumed_by=principal, description=description)
    role.assume_role_policy.add_statements(  # type: ignore[union-attr]
        iam.PolicyStatement(actions=["sts:TagSession"], principals=[principal])
    )
    eks.CfnPodIdentityAssociation(
        scope,
        f"{construct_id}Association",
        cluster_name=cluster.cluster_name,
        namespace=namespace,
        service_account=service_account,
        role_arn=role.role_arn,
    )
    return role


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cluster: eks.Cluster,
        namespace: str,
        environment: str,
        region: str,
        topic: sns.ITopic,
        heartbeat_topic: sns.ITopic,
        topic_key: kms.IKey,
        log_groups: dict[str, logs.ILogGroup],
        after: Construct,
    ) -> None:
        super().__init__(scope, construct_id)
        self.alertmanager_role = pod_role(
            self, "AlertmanagerRole", cluster=cluster, namespace=MONITORING_NAMESPACE,
            service_account=ALERTMANAGER_SA, description="Alertmanager: publish alerts to the alarm topic",
        )
        topic.grant_publish(self.alertmanager_role)
        heartbeat_topic.grant_publish(self.alertmanager_role)
        topic_key.grant(self.alertmanager_role, "kms:GenerateDataKey*", "kms:Decrypt")

        self.fluent_bit_role = pod_role(
            self, "FluentBitRole", cluster=cluster, namespace=FLUENT_BIT_NAMESPACE,
            service_account=FLUENT_BIT_SA, description="Fluent Bit: write jobq pods' logs to their log groups",
        )
        for group in log_groups.values():
            self.fluent_bit_role.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                    resources=[group.log_group_arn],
                )
            )

        self.prometheus = _chart(cluster, "Prometheus", PROMETHEUS_CHART, MONITORING_NAMESPACE,
                                 prometheus_values(namespace, topic.topic_arn, heartbeat_topic.topic_arn, region))
        self.fluent_bit = _chart(cluster, "FluentBit", FLUENT_BIT_CHART, FLUENT_BIT_NAMESPACE,
                                 fluent_bit_values(namespace, environment, region))
        for chart in (self.prometheus, self.fluent_bit):
            chart.node.add_dependency(after)


def _chart(cluster: eks.Cluster, construct_id: str, chart: tuple[str, str, str], namespace: str,
           values: dict[str, Any]) -> eks.HelmChart:
    name, repository, version = chart
    return cluster.add_helm_chart(
        construct_id, chart=name, release=name, repository=repository, version=version,
        namespace=namespace, create_namespace=True, values=values, wait=True,
    )
