"""Every Kubernetes object the stacks apply, validated offline against the OpenAPI schemas of
the cluster's own Kubernetes version (kubernetes-validate, strict: unknown fields fail).

Objects of the controllers' custom resources (External Secrets, KEDA) have no schema in
Kubernetes itself; they must be of a kind and apiVersion the charts the platform stack
installs serve, and are checked field by field in test_application.py.
"""

from __future__ import annotations

import kubernetes_validate
import pytest
from jobq_infra_testing import Synth, manifest_objects

from infra.k8s.identity import EXTERNAL_SECRETS_API

CUSTOM_RESOURCES = {
    (EXTERNAL_SECRETS_API, "ExternalSecret"),
    (EXTERNAL_SECRETS_API, "SecretStore"),
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("cert-manager.io/v1", "Issuer"),
    ("cert-manager.io/v1", "Certificate"),
}


def schema_version(synth: Synth) -> str:
    return f"{synth.config.cluster.kubernetes_version}.0"


def every_object(synth: Synth) -> list[dict]:
    return [o for layer in ("platform", "application") for o in manifest_objects(synth.raw(layer))]


def test_every_manifest_matches_the_clusters_kubernetes_schemas(synth: Synth) -> None:
    objects = every_object(synth)
    assert len(objects) >= 20
    version = schema_version(synth)
    custom = 0
    for obj in objects:
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        if (obj["apiVersion"], obj["kind"]) in CUSTOM_RESOURCES:
            custom += 1
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{where} against Kubernetes {version}: {exc.message} at {list(exc.path)}")
        except kubernetes_validate.SchemaNotFoundError:
            pytest.fail(
                f"{where}: {obj['apiVersion']} has no {obj['kind']} in Kubernetes {version}"
            )
    assert custom >= 5


def test_the_validator_refuses_what_the_cluster_would() -> None:
    """The check has teeth: a misspelt field and a wrong type both fail under strict."""
    bad_field = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "x"},
        "spec": {"selectr": {"a": "b"}, "ports": [{"port": 80}]},
    }
    bad_type = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {"replicas": "three", "selector": {}, "template": {}},
    }
    for obj in (bad_field, bad_type):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(obj, "1.36.0", strict=True)
