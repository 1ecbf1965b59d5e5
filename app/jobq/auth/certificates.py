"""Client certificates: the principal from a SAN (a SPIFFE URI or a DNS name), mapped by
JQ_AUTH_MTLS_SUBJECTS. The TLS handshake has already verified the chain against
JQ_TLS_CLIENT_CA_FILE; this only says who the verified peer is."""

from __future__ import annotations

import dataclasses
import json

from cryptography import x509
from cryptography.x509.oid import ExtensionOID

from jobq.auth.keys import KeyFormatError, check_tenant, parse_roles
from jobq.auth.principal import ALL_TENANTS, Principal, Role


@dataclasses.dataclass(frozen=True, slots=True)
class Grant:
    tenant: str
    roles: frozenset[Role]
    queues: frozenset[str] | None = None


def parse_subjects(text: str, setting: str = "JQ_AUTH_MTLS_SUBJECTS") -> dict[str, Grant]:
    """`{"spiffe://jobq/worker": {"tenant": "*", "roles": ["worker"]}, "ops.example": ...}`."""
    try:
        entries = json.loads(text)
    except ValueError:
        raise KeyFormatError(f"{setting}: not JSON (an object from SAN to grant)") from None
    if not isinstance(entries, dict):
        raise KeyFormatError(f"{setting}: a JSON object from SAN to grant")
    grants = {}
    for san, entry in entries.items():
        where = f"{setting}[{san!r}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("roles"), list):
            raise KeyFormatError(f'{where}: an object with "roles"')
        queues = entry.get("queues")
        if queues is not None and not isinstance(queues, list):
            raise KeyFormatError(f"{where}.queues: a list of queue names")
        grants[san] = Grant(
            tenant=check_tenant(str(entry.get("tenant", ALL_TENANTS)), f"{where}.tenant"),
            roles=parse_roles(entry["roles"], f"{where}.roles"),
            queues=frozenset(queues) if queues is not None else None,
        )
    return grants


def subject_names(pem: bytes) -> list[str]:
    """The certificate's URI SANs, then its DNS SANs: a SPIFFE id is the more specific."""
    cert = x509.load_pem_x509_certificate(pem)
    try:
        sans = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    except x509.ExtensionNotFound:
        return []
    assert isinstance(sans, x509.SubjectAlternativeName)
    return [
        *sans.get_values_for_type(x509.UniformResourceIdentifier),
        *sans.get_values_for_type(x509.DNSName),
    ]


def principal_for(pem: bytes, grants: dict[str, Grant]) -> Principal | None:
    """The principal of the first mapped SAN; None when no SAN is mapped."""
    for name in subject_names(pem):
        grant = grants.get(name)
        if grant is not None:
            return Principal(
                subject=f"cert:{name}",
                tenant=grant.tenant,
                roles=grant.roles,
                queues=grant.queues,
                via="mtls",
            )
    return None
