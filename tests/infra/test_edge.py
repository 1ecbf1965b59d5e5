"""The gRPC host's name and certificate (ADR 0019), read from the synthesized templates:
a DNS-validated ACM certificate for the Ingress host, served by the Ingress's ALB, and
external-dns keeping the host's record in that same zone and nowhere else."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from jobq_infra_testing import (
    MANIFEST_TYPE,
    Synth,
    _flatten,
    find_object,
    helm_charts,
    synthesize,
)

from infra.components.edge import InvalidHostError
from infra.config import ENVIRONMENTS

pytestmark = pytest.mark.timeout(600)


def _ingress_host(synth: Synth) -> str:
    ingress = find_object(synth.raw("application"), "Ingress", "jq-server")
    (rule,) = ingress["spec"]["rules"]
    return str(rule["host"])


def _certificates(synth: Synth) -> dict[str, dict[str, Any]]:
    return {
        lid: r["Properties"]
        for lid, r in synth.raw("platform")["Resources"].items()
        if r["Type"] == "AWS::CertificateManager::Certificate"
    }


def _ingress_certificate(synth: Synth) -> str:
    """The platform-stack logical id of the certificate the Ingress annotation names."""
    annotation = '"alb.ingress.kubernetes.io/certificate-arn":"'
    for resource in synth.raw("application")["Resources"].values():
        if resource["Type"] != MANIFEST_TYPE:
            continue
        manifest = resource["Properties"]["Manifest"]
        parts = manifest["Fn::Join"][1] if isinstance(manifest, dict) else []
        for i, part in enumerate(parts):
            if isinstance(part, str) and part.endswith(annotation):
                export = parts[i + 1]["Fn::ImportValue"]
                outputs = synth.raw("platform")["Outputs"].values()
                exported = [o for o in outputs if o.get("Export", {}).get("Name") == export]
                (value,) = [o["Value"] for o in exported]
                return str(value["Ref"])
    raise AssertionError("the Ingress names no certificate-arn taken from the platform stack")


def _external_dns(synth: Synth) -> dict[str, Any]:
    chart = helm_charts(synth.raw("platform"))["external-dns"]
    return dict(json.loads(_flatten(chart["Values"])))


def _zone_filter(values: dict[str, Any]) -> str:
    (zone,) = [a.split("=", 1)[1] for a in values["extraArgs"] if a.startswith("--zone-id-filter=")]
    return zone


def test_the_ingress_serves_a_dns_validated_certificate_for_its_host(synth: Synth) -> None:
    host = _ingress_host(synth)
    certificate = _certificates(synth)[_ingress_certificate(synth)]
    assert certificate["DomainName"] == host
    assert certificate["ValidationMethod"] == "DNS"
    # Validated in the zone the host's record lives in: the one external-dns may change.
    zone = _zone_filter(_external_dns(synth))
    assert {"DomainName": host, "HostedZoneId": zone} in certificate["DomainValidationOptions"]
    ingress = find_object(synth.raw("application"), "Ingress", "jq-server")
    assert ingress["spec"]["tls"] == [{"hosts": [host]}]
    annotations = ingress["metadata"]["annotations"]
    assert annotations["alb.ingress.kubernetes.io/listen-ports"] == '[{"HTTPS": 443}]'


def test_the_hosts_record_targets_the_ingress_alb_through_external_dns(synth: Synth) -> None:
    values = _external_dns(synth)
    host, zone = _ingress_host(synth), _zone_filter(values)
    # external-dns writes an alias to the ALB the Ingress status reports, for the Ingress
    # rules' hosts: only Ingresses, only jobq's namespace, only names inside this zone.
    assert values["sources"] == ["ingress"]
    assert f"--namespace={synth.config.namespace}" in values["extraArgs"]
    (domain,) = values["domainFilters"]
    assert host.endswith("." + domain)
    # It never deletes (upsert-only) and owns only records carrying its TXT owner id.
    assert values["policy"] == "upsert-only" and values["txtOwnerId"] == synth.config.prefix
    # Its Pod Identity role may change records of that zone alone.
    platform = synth.raw("platform")["Resources"]
    (association,) = [
        r["Properties"]
        for r in platform.values()
        if r["Type"] == "AWS::EKS::PodIdentityAssociation"
        and r["Properties"]["ServiceAccount"] == values["serviceAccount"]["name"]
    ]
    role = association["RoleArn"]["Fn::GetAtt"][0]
    changes = [
        s
        for r in platform.values()
        if r["Type"] == "AWS::IAM::Policy" and {"Ref": role} in r["Properties"]["Roles"]
        for s in r["Properties"]["PolicyDocument"]["Statement"]
        if "route53:ChangeResourceRecordSets" in s["Action"]
    ]
    assert [_flatten(s["Resource"]) for s in changes] == [f"arn:TOKEN:route53:::hostedzone/{zone}"]


def test_a_host_outside_the_zone_does_not_synthesize(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prod = ENVIRONMENTS["prod"]
    elsewhere = dataclasses.replace(
        prod, workload=dataclasses.replace(prod.workload, ingress_host="jobq.example.org")
    )
    monkeypatch.setitem(ENVIRONMENTS, "prod", elsewhere)
    with pytest.raises(InvalidHostError, match="not inside the hosted zone"):
        synthesize("prod", tmp_path)
