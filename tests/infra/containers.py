"""What a container would run: its image's ENTRYPOINT/CMD/ENV, a pod's command, args and
environment (ConfigMap and External Secrets rendered), and compose services, read from the
repository's own files and the synthesized manifests.

Kubernetes semantics (https://kubernetes.io/docs/tasks/inject-data-application/define-command-argument-container/):
`command` replaces the image's ENTRYPOINT and drops its CMD; `args` alone replace CMD.
Compose's `entrypoint`/`command` behave the same way.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobq_infra_testing import REPO_ROOT

DOCKER = REPO_ROOT / "docker"
IMAGES = {"jq-server": DOCKER / "Dockerfile.server", "jq-worker": DOCKER / "Dockerfile.worker"}


@dataclass(frozen=True)
class Image:
    entrypoint: list[str]
    cmd: list[str]
    env: dict[str, str]


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, rest) of the runtime (last) stage, continuation lines joined."""
    text = path.read_text()
    text = text[text.rindex("\nFROM") :]
    joined = re.sub(r"\\\n", " ", text)
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def image(name: str) -> Image:
    import json

    entrypoint: list[str] = []
    cmd: list[str] = []
    env: dict[str, str] = {}
    for word, rest in _instructions(IMAGES[name]):
        if word == "ENTRYPOINT":
            entrypoint = json.loads(rest)
        elif word == "CMD":
            cmd = json.loads(rest)
        elif word == "ENV":
            for token in shlex.split(rest):
                key, _, value = token.partition("=")
                env[key] = value
    return Image(entrypoint=entrypoint, cmd=cmd, env=env)


def argv(img: Image, command: list[str] | None, args: list[str] | None) -> list[str]:
    if command:
        return [*command, *(args or [])]
    return [*img.entrypoint, *(img.cmd if args is None else args)]


def image_of(reference: str) -> str | None:
    """Which of jobq's images a pod's image reference names: compose's ``jq-server:local``,
    or an ECR URI whose repository is the platform stack's ``Images/jq-server`` export."""
    for name in IMAGES:
        if reference.startswith(f"{name}:") or f"Images{name.replace('-', '')}" in reference:
            return name
    return None


def _render(value: Any) -> str:
    """A CloudFormation string with imports kept by name: {import:<export>}, other tokens TOKEN."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        sep, parts = value["Fn::Join"]
        return str(sep).join(_render(p) for p in parts)
    if isinstance(value, dict) and "Fn::ImportValue" in value:
        return "{import:" + str(value["Fn::ImportValue"]) + "}"
    return "TOKEN"


def manifests(template: dict[str, Any]) -> list[dict[str, Any]]:
    import json

    found: list[dict[str, Any]] = []
    for resource in template["Resources"].values():
        if resource["Type"] == "Custom::AWSCDK-EKS-KubernetesResource":
            found.extend(json.loads(_render(resource["Properties"]["Manifest"])))
    return found


# --- External Secrets templates: the subset of Go templates + sprig that workloads.py uses ---

_WITH = re.compile(r"\{\{ with \.(\w+) \}\}(.*?)\{\{ end \}\}", re.DOTALL)
_VALUE = re.compile(r"\{\{ (\.\w*) (\| sha256sum )?\}\}")


def render_template(template: str, values: dict[str, str]) -> str:
    def lookup(ref: str, dot: str | None) -> str:
        return dot if ref == "." and dot is not None else values[ref.removeprefix(".")]

    def simple(text: str, dot: str | None) -> str:
        def one(match: re.Match[str]) -> str:
            value = lookup(match.group(1), dot)
            return hashlib.sha256(value.encode()).hexdigest() if match.group(2) else value

        return _VALUE.sub(one, text)

    def with_block(match: re.Match[str]) -> str:
        value = values.get(match.group(1))
        return simple(match.group(2), value) if value else ""

    rendered = simple(_WITH.sub(with_block, template), None)
    assert "{{" not in rendered, f"unrendered template left: {rendered}"
    return rendered


def render_external_secret(
    obj: dict[str, Any], remote: dict[str, dict[str, str]]
) -> dict[str, str]:
    """The Secret data External Secrets would write from ``remote`` (each Secrets Manager
    secret's JSON, by secret name): one ExternalSecret may read several secrets."""
    spec = obj["spec"]
    if "data" in spec:
        values = {
            d["secretKey"]: remote[d["remoteRef"]["key"]][d["remoteRef"]["property"]]
            for d in spec["data"]
        }
    else:
        values = {}  # dataFrom extract: every property
        for source in spec["dataFrom"]:
            values.update(remote[source["extract"]["key"]])
    return {k: render_template(v, values) for k, v in spec["target"]["template"]["data"].items()}


@dataclass
class Container:
    """One container as the test will start it."""

    workload: str
    name: str
    image: str
    argv: list[str]
    env: dict[str, str]
    # containerPort by name, and the readiness probe (path, port name or number), if any.
    ports: dict[str, int] = field(default_factory=dict)
    readiness: tuple[str, str | int] | None = None
    init: bool = False
    # Secret volumes: mountPath -> (secret name, keys projected; None: every key).
    mounts: dict[str, tuple[str, list[str] | None]] = field(default_factory=dict)


def pod_containers(
    deployment: dict[str, Any],
    config_maps: dict[str, dict[str, str]],
    secrets: dict[str, dict[str, str]],
) -> list[Container]:
    spec = deployment["spec"]["template"]["spec"]
    found = []
    for init, key in ((True, "initContainers"), (False, "containers")):
        for c in spec.get(key, []):
            name = image_of(c["image"])
            if name is None:
                continue  # a third-party image (PgBouncer): not ours to start
            img = image(name)
            env = dict(img.env)
            for source in c.get("envFrom", []):
                if "configMapRef" in source:
                    env.update(config_maps[source["configMapRef"]["name"]])
                else:
                    env.update(secrets[source["secretRef"]["name"]])
            env.update({e["name"]: e["value"] for e in c.get("env", [])})
            probe = c.get("readinessProbe", {}).get("httpGet")
            volumes = {v["name"]: v for v in spec.get("volumes", [])}
            mounts = {}
            for mount in c.get("volumeMounts", []):
                secret = volumes[mount["name"]].get("secret")
                if secret:
                    items = [i["key"] for i in secret["items"]] if "items" in secret else None
                    mounts[mount["mountPath"]] = (secret["secretName"], items)
            found.append(
                Container(
                    workload=deployment["metadata"]["name"],
                    name=c["name"],
                    image=name,
                    argv=argv(img, c.get("command"), c.get("args")),
                    env=env,
                    ports={p["name"]: p["containerPort"] for p in c.get("ports", [])},
                    readiness=(probe["path"], probe["port"]) if probe else None,
                    init=init,
                    mounts=mounts,
                )
            )
    return found


def issue_tls(dns_names: list[str]) -> dict[str, str]:
    """What cert-manager writes into a Certificate's Secret (tls.crt, tls.key, ca.crt), from
    a CA of the test's own; the leaf also names 127.0.0.1, where the test's clients dial."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def pem(cert: x509.Certificate) -> str:
        return cert.public_bytes(serialization.Encoding.PEM).decode()

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test in-cluster CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[-1])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return {"tls.crt": pem(leaf), "tls.key": key_pem, "ca.crt": pem(ca)}


def mount_secrets(
    container: Container, secrets: dict[str, dict[str, str]], root: Path
) -> dict[str, str]:
    """Write each secret volume's files under ``root``; returns mountPath -> directory."""
    paths = {}
    for mount_path, (secret, items) in container.mounts.items():
        directory = root / container.name / mount_path.strip("/").replace("/", "_")
        directory.mkdir(parents=True, exist_ok=True)
        for key, value in secrets[secret].items():
            if items is None or key in items:
                (directory / key).write_text(value)
        paths[mount_path] = str(directory)
    return paths
