"""In-cluster TLS for gRPC, issued by cert-manager: a self-signed root makes the namespace's
CA, and the CA signs jq-server's certificate for its Service names. cert-manager renews
it before it expires (renewBefore); Reloader then rolls the pods that mount it."""

from __future__ import annotations

from typing import Any

from infra.k8s.workloads import SERVER_TLS_SECRET

CERT_MANAGER_API = "cert-manager.io/v1"
SELF_SIGNED_ISSUER = "jq-selfsigned"
CA_ISSUER = "jq-ca"
CA_SECRET = "jq-ca"

Manifest = dict[str, Any]


def issuers(ns: str, environment: str) -> list[Manifest]:
    return [
        {
            "apiVersion": CERT_MANAGER_API,
            "kind": "Issuer",
            "metadata": {"name": SELF_SIGNED_ISSUER, "namespace": ns},
            "spec": {"selfSigned": {}},
        },
        {
            "apiVersion": CERT_MANAGER_API,
            "kind": "Certificate",
            "metadata": {"name": CA_SECRET, "namespace": ns},
            "spec": {
                "isCA": True,
                "commonName": f"jobq-{environment} in-cluster CA",
                "secretName": CA_SECRET,
                "duration": "87600h",  # 10 years; the leaf certificates rotate, not the root
                "privateKey": {"algorithm": "ECDSA", "size": 256},
                "issuerRef": {"name": SELF_SIGNED_ISSUER, "kind": "Issuer"},
            },
        },
        {
            "apiVersion": CERT_MANAGER_API,
            "kind": "Issuer",
            "metadata": {"name": CA_ISSUER, "namespace": ns},
            "spec": {"ca": {"secretName": CA_SECRET}},
        },
    ]


def server_dns_names(ns: str) -> list[str]:
    return ["jq-server", f"jq-server.{ns}", f"jq-server.{ns}.svc", f"jq-server.{ns}.svc.cluster.local"]


def server_certificate(ns: str) -> Manifest:
    return {
        "apiVersion": CERT_MANAGER_API,
        "kind": "Certificate",
        "metadata": {"name": SERVER_TLS_SECRET, "namespace": ns},
        "spec": {
            "secretName": SERVER_TLS_SECRET,
            "dnsNames": server_dns_names(ns),
            "duration": "2160h",  # 90 days
            "renewBefore": "720h",
            "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
            "usages": ["server auth", "digital signature", "key encipherment"],
            "issuerRef": {"name": CA_ISSUER, "kind": "Issuer"},
        },
    }
