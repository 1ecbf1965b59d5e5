"""What production must be, read from the synthesized templates, not from the config echoed
back: every store Multi-AZ, at least 3 nodes across 3 AZs, backups kept 30 days or more,
deletion protection, someone paged, a DNS-validated certificate for the gRPC host. A
weakened prod config is synthesized too and must break each rule it weakens, so a rule
that checks nothing cannot pass."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from jobq_infra_testing import Synth, synthesize

from infra.app import MissingPagerError
from infra.config import ENVIRONMENTS

# A synth of its own (the weakened prod) besides the shared ones.
pytestmark = pytest.mark.timeout(600)

MIN_AZS = 3
MIN_NODES = 3
MIN_BACKUP_DAYS = 30


def _resources(synth: Synth, layer: str, kind: str) -> list[dict[str, Any]]:
    return [r["Properties"] for r in synth.raw(layer)["Resources"].values() if r["Type"] == kind]


def _subnet_azs(synth: Synth) -> dict[str, str]:
    """Logical id of each network-stack subnet -> its availability zone."""
    return {
        lid: r["Properties"]["AvailabilityZone"]
        for lid, r in synth.raw("network")["Resources"].items()
        if r["Type"] == "AWS::EC2::Subnet"
    }


def violations(synth: Synth) -> set[str]:
    found: set[str] = set()
    (db,) = _resources(synth, "data", "AWS::RDS::DBInstance")
    if db.get("MultiAZ") is not True:
        found.add("database-multi-az")
    if int(db.get("BackupRetentionPeriod", 0)) < MIN_BACKUP_DAYS:
        found.add("database-backups")
    if db.get("DeletionProtection") is not True:
        found.add("database-deletion-protection")
    (cache,) = _resources(synth, "data", "AWS::ElastiCache::ReplicationGroup")
    if not (cache.get("MultiAZEnabled") and cache.get("AutomaticFailoverEnabled")):
        found.add("cache-multi-az")
    if int(cache.get("ReplicasPerNodeGroup", 0)) < 1:
        found.add("cache-replicas")
    (kafka,) = _resources(synth, "data", "AWS::MSK::Cluster")
    if (
        len(kafka["BrokerNodeGroupInfo"]["ClientSubnets"]) < MIN_AZS
        or kafka["NumberOfBrokerNodes"] < MIN_AZS
    ):
        found.add("kafka-azs")
    nat = _resources(synth, "network", "AWS::EC2::NatGateway")
    if len(nat) < MIN_AZS:
        found.add("nat-per-az")
    # Nodes: the managed node groups' minimum and the AZs of their subnets (cross-stack
    # imports of the network stack's subnets, named by their logical ids).
    azs = _subnet_azs(synth)
    for group in _resources(synth, "platform", "AWS::EKS::Nodegroup"):
        if group["ScalingConfig"]["MinSize"] < MIN_NODES:
            found.add("nodes-min")
        subnet_ids = {str(s) for s in group["Subnets"]}
        zones = {az for lid, az in azs.items() if any(lid in s for s in subnet_ids)}
        if len(zones) < MIN_AZS:
            found.add("nodes-azs")
    plans = _resources(synth, "data", "AWS::Backup::BackupPlan")
    kept = [
        r.get("Lifecycle", {}).get("DeleteAfterDays", 0)
        for p in plans
        for r in p["BackupPlan"]["BackupPlanRule"]
    ]
    if (
        not kept
        or max(kept) < MIN_BACKUP_DAYS
        or not _resources(synth, "data", "AWS::Backup::BackupSelection")
    ):
        found.add("backup-plan")
    if not _resources(synth, "observability", "AWS::SNS::Subscription"):
        found.add("pager")
    if not _fits_at_peak(synth):
        found.add("capacity")
    # The gRPC host: a DNS-validated certificate for exactly the Ingress's host (ADR 0019).
    from jobq_infra_testing import find_object

    (rule,) = find_object(synth.raw("application"), "Ingress", "jq-server")["spec"]["rules"]
    if not any(
        c["DomainName"] == rule["host"] and c.get("ValidationMethod") == "DNS"
        for c in _resources(synth, "platform", "AWS::CertificateManager::Certificate")
    ):
        found.add("tls-certificate")
    return found


# vCPUs of the instance types the configs use.
VCPUS = {"t3.small": 2, "m5.large": 2, "c5.xlarge": 4, "m5.xlarge": 4}
# Per node: kubelet/system reservation plus the DaemonSets (CNI, kube-proxy, Fluent Bit, ...).
NODE_OVERHEAD_VCPU = 0.5


def _cpu(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def _fits_at_peak(synth: Synth) -> bool:
    """Every jobq pod at its maximum replica count fits on the node group at its maximum."""
    from jobq_infra_testing import manifest_objects

    objects = manifest_objects(synth.raw("application"))
    peak = {
        o["metadata"]["name"]: o["spec"].get("replicas", 1)
        for o in objects
        if o["kind"] == "Deployment"
    }
    for scaled in (o for o in objects if o["kind"] == "ScaledObject"):
        peak[scaled["spec"]["scaleTargetRef"]["name"]] = scaled["spec"]["maxReplicaCount"]
    need = 0.0
    for o in objects:
        if o["kind"] == "Deployment":
            pod = o["spec"]["template"]["spec"]
            cpu = sum(_cpu(c["resources"]["requests"]["cpu"]) for c in pod["containers"])
            need += cpu * peak[o["metadata"]["name"]]
    (group,) = _resources(synth, "platform", "AWS::EKS::Nodegroup")
    per_node = min(VCPUS[t] for t in group["InstanceTypes"]) - NODE_OVERHEAD_VCPU
    return group["ScalingConfig"]["MaxSize"] * per_node >= need


def test_prod_holds_every_invariant(prod: Synth) -> None:
    assert violations(prod) == set()
    assert prod.stacks.data.termination_protection


def weakened() -> Any:
    prod = ENVIRONMENTS["prod"]
    return dataclasses.replace(
        prod,
        network=dataclasses.replace(prod.network, max_azs=2, nat_gateways=1),
        database=dataclasses.replace(
            prod.database,
            multi_az=False,
            backup_retention_days=7,
            deletion_protection=False,
            backup_plan_retention_days=None,
        ),
        cache=dataclasses.replace(prod.cache, replicas_per_shard=0),
        kafka=dataclasses.replace(prod.kafka, brokers=2),
        cluster=dataclasses.replace(
            prod.cluster, instance_types=("t3.small",), min_nodes=1, desired_nodes=1, max_nodes=4
        ),
    )


def test_a_weakened_prod_breaks_each_invariant_it_weakens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(ENVIRONMENTS, "prod", weakened())
    synth = synthesize("prod", tmp_path)
    assert violations(synth) >= {
        "database-multi-az",
        "database-backups",
        "database-deletion-protection",
        "cache-replicas",
        "kafka-azs",
        "nat-per-az",
        "nodes-min",
        "nodes-azs",
        "backup-plan",
        "capacity",
    }


def test_prod_without_a_pager_does_not_synthesize(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prod = ENVIRONMENTS["prod"]
    silent = dataclasses.replace(
        prod, observability=dataclasses.replace(prod.observability, pagers=())
    )
    monkeypatch.setitem(ENVIRONMENTS, "prod", silent)
    with pytest.raises(MissingPagerError, match="page someone"):
        synthesize("prod", tmp_path)


@pytest.mark.parametrize("name", sorted(ENVIRONMENTS))
def test_every_environment_names_who_is_paged(name: str) -> None:
    pagers = ENVIRONMENTS[name].observability.pagers
    assert pagers and all(p.protocol in ("email", "https") and p.endpoint for p in pagers)
