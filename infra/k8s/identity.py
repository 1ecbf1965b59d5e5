"""Namespace, service-account names and the Secrets Manager store the workloads share."""

from __future__ import annotations

from typing import Any

SERVER_SA = "jq-server"
WORKER_SA = "jq-worker"
SECRETS_READER_SA = "jq-secrets-reader"
RESULT_PROCESSOR_SA = "jq-result-processor"
METRICS_AGGREGATOR_SA = "jq-metrics-aggregator"
SECRET_STORE = "aws-secrets-manager"
EXTERNAL_SECRETS_API = "external-secrets.io/v1"

Manifest = dict[str, Any]

# Kafka names the IAM policies (platform stack) and the pods (ConfigMap) must agree on.
# Every jobq topic is "jobq.<topic>" (JQ_KAFKA_TOPIC_PREFIX), so "jobq.*" covers all of them.
KAFKA_TOPIC_PREFIX = "jobq."
# jq-result-processor's consumer group (JQ_RESULT_PROCESSOR_GROUP) and the topics it reads
# (app/jobq/events/result_processor.py SOURCE_TOPICS), without the prefix.
RESULT_PROCESSOR_GROUP = "jobq-result-processor"
RESULT_PROCESSOR_TOPICS = ("job.completed", "job.dead-lettered")
# jq-metrics-aggregator's group (JQ_METRICS_AGGREGATOR_GROUP) and topics
# (app/jobq/events/aggregator.py SOURCE_TOPICS), without the prefix.
METRICS_AGGREGATOR_GROUP = "jobq-metrics-aggregator"
METRICS_AGGREGATOR_TOPICS = (
    "job.submitted",
    "job.started",
    "job.completed",
    "job.failed",
    "job.dead-lettered",
    "job.cancelled",
    "job.expired",
)


def namespace(name: str, environment: str) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": {
                "app.kubernetes.io/part-of": "jobq",
                "jobq.io/environment": environment,
                "pod-security.kubernetes.io/enforce": "restricted",
                # The AWS Load Balancer Controller adds a readiness gate to pods behind an
                # ALB target group: a rollout waits until the new pod is healthy in the ALB.
                "elbv2.k8s.aws/pod-readiness-gate-inject": "enabled",
            },
        },
    }


def secret_store(ns: str, *, region: str, service_account: str) -> Manifest:
    """External Secrets store for AWS Secrets Manager, authenticated through the reader's IRSA role."""
    return {
        "apiVersion": EXTERNAL_SECRETS_API,
        "kind": "SecretStore",
        "metadata": {"name": SECRET_STORE, "namespace": ns},
        "spec": {
            "provider": {
                "aws": {
                    "service": "SecretsManager",
                    "region": region,
                    "auth": {"jwt": {"serviceAccountRef": {"name": service_account}}},
                }
            }
        },
    }
