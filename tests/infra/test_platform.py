"""EKS, ECR and identities."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Match
from jobq_infra_testing import (
    Synth,
    find_object,
    helm_charts,
    kafka_statements,
    manifest_objects,
    service_account_role,
    statement_resources,
)

from jobq.events.aggregator import SOURCE_TOPICS as AGGREGATOR_SOURCES
from jobq.events.result_processor import SOURCE_TOPICS as RESULT_PROCESSOR_SOURCES


def test_ecr_repositories_scan_on_push_and_expire_old_images(synth: Synth) -> None:
    platform = synth.template("platform")
    for name in ("jq-server", "jq-worker"):
        platform.has_resource_properties(
            "AWS::ECR::Repository",
            {
                "RepositoryName": name,
                "ImageScanningConfiguration": {"ScanOnPush": True},
                "LifecyclePolicy": {"LifecyclePolicyText": Match.string_like_regexp("untagged")},
            },
        )


def test_prod_images_are_immutable(prod: Synth) -> None:
    prod.template("platform").has_resource_properties(
        "AWS::ECR::Repository", {"RepositoryName": "jq-server", "ImageTagMutability": "IMMUTABLE"}
    )


def test_cluster_api_is_private_and_logs_everything(synth: Synth) -> None:
    (cluster,) = synth.template("platform").find_resources("Custom::AWSCDK-EKS-Cluster").values()
    config = cluster["Properties"]["Config"]
    assert config["version"] == synth.config.cluster.kubernetes_version
    assert config["resourcesVpcConfig"]["endpointPublicAccess"] is False
    assert config["resourcesVpcConfig"]["endpointPrivateAccess"] is True
    enabled = config["logging"]["clusterLogging"][0]
    assert enabled["enabled"] is True and len(enabled["types"]) == 5
    assert config["encryptionConfig"][0]["resources"] == ["secrets"]


def test_managed_node_group_uses_the_configured_instances(synth: Synth) -> None:
    cfg = synth.config.cluster
    synth.template("platform").has_resource_properties(
        "AWS::EKS::Nodegroup",
        {
            "InstanceTypes": list(cfg.instance_types),
            "ScalingConfig": {
                "MinSize": cfg.min_nodes,
                "DesiredSize": cfg.desired_nodes,
                "MaxSize": cfg.max_nodes,
            },
        },
    )


def test_controllers_the_application_needs_are_installed(synth: Synth) -> None:
    charts = helm_charts(synth.raw("platform"))
    assert {"keda", "external-secrets", "prometheus", "aws-load-balancer-controller"} <= set(charts)
    for chart in charts.values():
        assert chart.get("Version"), f"chart {chart['Chart']} must be pinned"


def test_workloads_get_irsa_roles_and_namespace(synth: Synth) -> None:
    platform = synth.raw("platform")
    ns = find_object(platform, "Namespace", synth.config.namespace)
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    accounts = {
        o["metadata"]["name"]: o
        for o in manifest_objects(platform)
        if o["kind"] == "ServiceAccount"
    }
    for name in ("jq-server", "jq-worker", "jq-secrets-reader", "jq-result-processor"):
        assert "eks.amazonaws.com/role-arn" in accounts[name]["metadata"]["annotations"]
        assert accounts[name]["metadata"]["namespace"] == synth.config.namespace


def test_server_role_may_only_use_jobq_topics(synth: Synth) -> None:
    policies = synth.template("platform").find_resources("AWS::IAM::Policy")
    kafka_statements = [
        s
        for p in policies.values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if any(
            str(a).startswith("kafka-cluster:")
            for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
        )
    ]
    assert kafka_statements, "server needs MSK IAM permissions"
    for statement in kafka_statements:
        assert "kafka-cluster:*" not in json.dumps(statement["Action"])
        assert statement["Resource"] != "*"


CONSUMER_TOPICS = {
    "jq-result-processor": ("jobq-result-processor", RESULT_PROCESSOR_SOURCES),
    "jq-metrics-aggregator": ("jobq-metrics-aggregator", AGGREGATOR_SOURCES),
}


@pytest.mark.parametrize("name", sorted(CONSUMER_TOPICS))
def test_consumer_role_only_reads_its_topics_with_its_group(synth: Synth, name: str) -> None:
    group, sources = CONSUMER_TOPICS[name]
    role = service_account_role(synth, name)
    statements = kafka_statements(synth, role)
    granted: dict[str, set[str]] = {}
    for statement in statements:
        assert statement["Effect"] == "Allow"
        actions = (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
        for resource in statement_resources(statement):
            # Topic and group ARNs are built from the cluster name; the cluster's is its GetAtt.
            kind = next((k for k in ("topic", "group") if f":{k}/" in resource), "cluster")
            granted.setdefault(kind, set()).update(actions)
    assert granted["cluster"] == {"kafka-cluster:Connect", "kafka-cluster:DescribeCluster"}
    assert granted["topic"] == {"kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"}
    assert granted["group"] == {"kafka-cluster:DescribeGroup", "kafka-cluster:AlterGroup"}
    topics = {
        r.rsplit("/", 1)[1] for s in statements for r in statement_resources(s) if ":topic/" in r
    }
    groups = {
        r.rsplit("/", 1)[1] for s in statements for r in statement_resources(s) if ":group/" in r
    }
    # Exactly the topics the code reads (SOURCE_TOPICS), under the deployed prefix.
    assert topics == {f"jobq.{t}" for t in sources}
    assert groups == {group}
