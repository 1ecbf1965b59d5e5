"""Shared helpers for the infra tests: one synth per environment, and readers for what it holds."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk.assertions import Template
from cdk_nag import AwsSolutionsChecks

from infra.app import JobqStacks, build
from infra.config import ENVIRONMENTS, EnvironmentConfig
from infra.nag import acknowledge

REPO_ROOT = Path(__file__).resolve().parents[2]
ENV_NAMES = sorted(ENVIRONMENTS)


def cdk_context() -> dict[str, Any]:
    return dict(json.loads((REPO_ROOT / "cdk.json").read_text())["context"])


@dataclass
class Synth:
    config: EnvironmentConfig
    stacks: JobqStacks
    outdir: Path
    templates: dict[str, dict[str, Any]]
    validation_error: Exception | None

    def template(self, layer: str) -> Template:
        return Template.from_json(self.templates[f"{self.config.prefix}-{layer}"])

    def raw(self, layer: str) -> dict[str, Any]:
        return self.templates[f"{self.config.prefix}-{layer}"]

    def validation_report(self) -> dict[str, Any]:
        path = self.outdir / "validation-report.json"
        return json.loads(path.read_text()) if path.exists() else {"pluginReports": []}

    def template_files(self) -> list[Path]:
        return sorted(self.outdir.glob("*.template.json"))


def synthesize(name: str, outdir: Path) -> Synth:
    config = ENVIRONMENTS[name]
    app = cdk.App(context={**cdk_context(), "env": name}, outdir=str(outdir))
    stacks = build(app, config)
    acknowledge(stacks, config)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    error: Exception | None = None
    try:
        app.synth()
    except Exception as exc:
        error = exc
    templates = {
        p.name.removesuffix(".template.json"): json.loads(p.read_text())
        for p in outdir.glob("*.template.json")
    }
    return Synth(
        config=config, stacks=stacks, outdir=outdir, templates=templates, validation_error=error
    )


MANIFEST_TYPE = "Custom::AWSCDK-EKS-KubernetesResource"
HELM_TYPE = "Custom::AWSCDK-EKS-HelmChart"


def _flatten(value: Any) -> str:
    """Render a CloudFormation string (plain or Fn::Join) with every token replaced by TOKEN."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        sep, parts = value["Fn::Join"]
        return sep.join(p if isinstance(p, str) else "TOKEN" for p in parts)
    return "TOKEN"


def manifest_objects(template: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for resource in template["Resources"].values():
        if resource["Type"] == MANIFEST_TYPE:
            found.extend(json.loads(_flatten(resource["Properties"]["Manifest"])))
    return found


def find_object(template: dict[str, Any], kind: str, name: str) -> dict[str, Any]:
    matches = [
        o for o in manifest_objects(template) if o["kind"] == kind and o["metadata"]["name"] == name
    ]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def helm_charts(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        r["Properties"]["Chart"]: r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == HELM_TYPE
    }


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def service_account_role(synth: Synth, name: str) -> str:
    """The IAM role a service account in the platform stack is annotated with (IRSA),
    found through the template's own references, not a hard-coded logical id."""
    for resource in synth.raw("platform")["Resources"].values():
        if resource["Type"] != MANIFEST_TYPE:
            continue
        objects = json.loads(_flatten(resource["Properties"]["Manifest"]))
        if any(o["kind"] == "ServiceAccount" and o["metadata"]["name"] == name for o in objects):
            refs = re.findall(
                r'"Fn::GetAtt": \["([^"]+)", "Arn"\]',
                json.dumps(resource["Properties"]["Manifest"]),
            )
            (role,) = set(refs)
            return role
    raise AssertionError(f"no ServiceAccount {name} in the platform stack")


def kafka_statements(synth: Synth, role: str | None = None) -> list[dict[str, Any]]:
    """The platform stack's IAM statements with kafka-cluster:* actions; with ``role`` (a
    logical id from ``service_account_role``), only those of policies attached to it."""
    policies = synth.template("platform").find_resources("AWS::IAM::Policy")
    return [
        s
        for p in policies.values()
        if role is None or {"Ref": role} in p["Properties"].get("Roles", [])
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if any(str(a).startswith("kafka-cluster:") for a in _as_list(s["Action"]))
    ]


def statement_resources(statement: dict[str, Any]) -> list[str]:
    """Resources of a statement, CloudFormation tokens rendered as TOKEN."""
    return [_flatten(r) for r in _as_list(statement["Resource"])]
