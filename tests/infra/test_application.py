"""What runs in the namespace: server, workers, PgBouncer, scaling, budgets, secrets."""

from __future__ import annotations

import fnmatch
from typing import Any

import pytest
from jobq_infra_testing import (
    Synth,
    find_object,
    kafka_statements,
    manifest_objects,
    statement_resources,
)

from jobq.events.topics import TOPIC_OF_KIND, WORKER_HEARTBEAT


def test_workers_autoscale_on_queue_depth(synth: Synth) -> None:
    app = synth.raw("application")
    scaled = find_object(app, "ScaledObject", "jq-worker")
    spec = scaled["spec"]
    assert spec["scaleTargetRef"]["name"] == "jq-worker"
    assert spec["minReplicaCount"] == synth.config.workload.worker_min_replicas
    assert spec["maxReplicaCount"] == synth.config.workload.worker_max_replicas
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "prometheus"
    assert "jq_job_queue_depth" in trigger["metadata"]["query"]
    assert f'namespace="{synth.config.namespace}"' in trigger["metadata"]["query"]
    assert int(trigger["metadata"]["threshold"]) == synth.config.workload.jobs_per_worker


def test_every_deployment_has_a_disruption_budget(synth: Synth) -> None:
    app = synth.raw("application")
    deployments = {
        o["metadata"]["name"]: o for o in manifest_objects(app) if o["kind"] == "Deployment"
    }
    budgets = {
        o["metadata"]["name"]: o
        for o in manifest_objects(app)
        if o["kind"] == "PodDisruptionBudget"
    }
    assert set(deployments) == {
        "jq-server",
        "jq-worker",
        "jq-pgbouncer",
        "jq-result-processor",
        "jq-metrics-aggregator",
    }
    for name, deployment in deployments.items():
        selector = budgets[name]["spec"]["selector"]["matchLabels"]
        assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
        # A budget that forbids every eviction blocks node rotation forever.
        assert budgets[name]["spec"].get("maxUnavailable") not in (None, 0, "0%")


def test_everything_lives_in_the_environment_namespace(synth: Synth) -> None:
    for obj in manifest_objects(synth.raw("application")):
        assert obj["metadata"]["namespace"] == synth.config.namespace


def test_server_is_exposed_over_grpc_through_an_alb(synth: Synth) -> None:
    app = synth.raw("application")
    service = find_object(app, "Service", "jq-server")
    grpc = next(p for p in service["spec"]["ports"] if p["name"] == "grpc")
    assert grpc["port"] == 50051 and grpc["appProtocol"] == "grpc"
    ingress = find_object(app, "Ingress", "jq-server")
    annotations = ingress["metadata"]["annotations"]
    assert ingress["spec"]["ingressClassName"] == "alb"
    assert annotations["alb.ingress.kubernetes.io/backend-protocol-version"] == "GRPC"
    assert "HTTPS" in annotations["alb.ingress.kubernetes.io/listen-ports"]


def test_server_binds_all_interfaces_and_probes_its_http_port(synth: Synth) -> None:
    app = synth.raw("application")
    config = find_object(app, "ConfigMap", "jq-config")["data"]
    assert config["JQ_GRPC_HOST"] == "0.0.0.0" and config["JQ_HTTP_HOST"] == "0.0.0.0"
    assert config["JQ_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    # The values jobq's settings accept (app/jobq/config.py): OAUTHBEARER is not one of them.
    assert config["JQ_KAFKA_SASL_MECHANISM"] == "AWS_MSK_IAM"
    assert config["JQ_AWS_REGION"]
    server = find_object(app, "Deployment", "jq-server")["spec"]["template"]["spec"]
    (container,) = server["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert server["initContainers"][0]["command"] == ["jq-server", "migrate"]


def test_containers_run_as_non_root(synth: Synth) -> None:
    for obj in manifest_objects(synth.raw("application")):
        if obj["kind"] != "Deployment":
            continue
        pod = obj["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"] + pod.get("initContainers", []):
            assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_pgbouncer_pools_transactions(synth: Synth) -> None:
    pgbouncer = find_object(synth.raw("application"), "Deployment", "jq-pgbouncer")
    env = {
        e["name"]: e["value"] for e in pgbouncer["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["POOL_MODE"] == "transaction"
    assert env["SERVER_TLS_SSLMODE"] == "require"


def test_secrets_come_from_secrets_manager_not_the_template(synth: Synth) -> None:
    app = synth.raw("application")
    externals = {
        o["metadata"]["name"]: o for o in manifest_objects(app) if o["kind"] == "ExternalSecret"
    }
    assert {"jq-database", "jq-database-owner", "jq-api-token", "jq-server-auth"} <= set(externals)
    database = externals["jq-database"]["spec"]
    # Applications go through PgBouncer; the direct URL is for LISTEN and the leader lock.
    assert "jq-pgbouncer" in database["target"]["template"]["data"]["JQ_DATABASE_URL"]
    assert not any(o["kind"] == "Secret" for o in manifest_objects(app))


def _remote_keys(external: dict[str, Any]) -> set[str]:
    spec = external["spec"]
    return {d["remoteRef"]["key"] for d in spec.get("data", [])} | {
        d["extract"]["key"] for d in spec.get("dataFrom", [])
    }


def test_only_the_migrate_step_can_read_the_owner_login(synth: Synth) -> None:
    # ADR 0019: the master (owner) login may change the schema; no serving pod holds it.
    app = synth.raw("application")
    owner_secret = f"{synth.config.prefix}/database"
    readers = {
        o["metadata"]["name"]
        for o in manifest_objects(app)
        if o["kind"] == "ExternalSecret" and owner_secret in _remote_keys(o)
    }
    assert readers == {"jq-database-owner"}
    seen_by = set()
    for o in manifest_objects(app):
        if o["kind"] != "Deployment":
            continue
        pod = o["spec"]["template"]["spec"]
        for c in pod["containers"] + pod.get("initContainers", []):
            names = {s["secretRef"]["name"] for s in c.get("envFrom", []) if "secretRef" in s}
            names |= {
                e["valueFrom"]["secretKeyRef"]["name"]
                for e in c.get("env", [])
                if "secretKeyRef" in e.get("valueFrom", {})
            }
            if readers & names:
                seen_by.add((o["metadata"]["name"], c["name"]))
        assert not any("jq-database-owner" in str(v) for v in pod.get("volumes", []))
    assert seen_by == {("jq-server", "migrate")}


def test_pgbouncer_and_the_server_share_one_login_secret(synth: Synth) -> None:
    # A rotation rewrites one Secret, so Reloader restarts PgBouncer and its clients from
    # the same change, and the login each presents is the same secret version's.
    app = synth.raw("application")

    def secret_refs(name: str) -> set[str]:
        (container,) = find_object(app, "Deployment", name)["spec"]["template"]["spec"][
            "containers"
        ]
        return {s["secretRef"]["name"] for s in container["envFrom"] if "secretRef" in s}

    assert "jq-database" in secret_refs("jq-pgbouncer") & secret_refs("jq-server")
    database = next(
        o
        for o in manifest_objects(app)
        if o["kind"] == "ExternalSecret" and o["metadata"]["name"] == "jq-database"
    )
    assert _remote_keys(database) == {f"{synth.config.prefix}/database-app"}


def test_every_server_replica_signs_console_sessions_with_one_generated_key(synth: Synth) -> None:
    # ADR 0020: a console login is a signed cookie. Replicas with keys of their own (the
    # default when JQ_CONSOLE_SECRET is unset) would refuse, behind the load balancer, every
    # login made through another replica.
    app = synth.raw("application")
    (container,) = [
        c
        for c in find_object(app, "Deployment", "jq-server")["spec"]["template"]["spec"][
            "containers"
        ]
        if c["name"] == "jq-server"
    ]
    assert "JQ_CONSOLE_SECRET" not in {e["name"] for e in container.get("env", [])}
    refs = {s["secretRef"]["name"] for s in container["envFrom"] if "secretRef" in s}
    signing = [
        o
        for o in manifest_objects(app)
        if o["kind"] == "ExternalSecret"
        and o["metadata"]["name"] in refs
        and "JQ_CONSOLE_SECRET" in o["spec"]["target"]["template"]["data"]
    ]
    assert len(signing) == 1
    secret_name = f"{synth.config.prefix}/console"
    assert _remote_keys(signing[0]) == {secret_name}
    # The key is generated by Secrets Manager, long enough for the server to accept it
    (generated,) = [
        r["Properties"]["GenerateSecretString"]
        for r in synth.raw("data")["Resources"].values()
        if r["Type"] == "AWS::SecretsManager::Secret" and r["Properties"].get("Name") == secret_name
    ]
    assert generated["PasswordLength"] >= 32


def test_images_come_from_the_environment_ecr(synth: Synth) -> None:
    # Without -c image-tag the app synthesizes with a placeholder tag that no registry holds.
    app = synth.raw("application")
    for name in ("jq-server", "jq-worker", "jq-result-processor", "jq-metrics-aggregator"):
        (container,) = find_object(app, "Deployment", name)["spec"]["template"]["spec"][
            "containers"
        ]
        assert ".dkr.ecr." in container["image"] and container["image"].endswith(":unreleased")


def test_topic_prefix_matches_the_topics_the_kafka_roles_may_use(synth: Synth) -> None:
    # jobq names its topics JQ_KAFKA_TOPIC_PREFIX + "job.completed" etc.; the IRSA policies
    # grant topic/<cluster>/*/<pattern>, so a pattern matching no real topic denies produce
    # and consume alike.
    config = find_object(synth.raw("application"), "ConfigMap", "jq-config")["data"]
    prefix = config["JQ_KAFKA_TOPIC_PREFIX"]
    names = {prefix + topic for topic in (*TOPIC_OF_KIND.values(), WORKER_HEARTBEAT)}
    patterns = [
        resource.rsplit("/", 1)[1]
        for statement in kafka_statements(synth)
        for resource in statement_resources(statement)
        if ":topic/" in resource
    ]
    assert patterns
    for pattern in patterns:
        assert any(fnmatch.fnmatchcase(name, pattern) for name in names), (
            f"topic pattern {pattern} matches none of {sorted(names)}"
        )


def _pod(app: dict[str, Any], name: str) -> dict[str, Any]:
    return find_object(app, "Deployment", name)["spec"]["template"]


CONSUMERS = {
    # deployment: (replicas setting, settings prefix, group, port)
    "jq-result-processor": (
        "result_processor",
        "JQ_RESULT_PROCESSOR",
        "jobq-result-processor",
        8082,
    ),
    "jq-metrics-aggregator": (
        "metrics_aggregator",
        "JQ_METRICS_AGGREGATOR",
        "jobq-metrics-aggregator",
        8083,
    ),
}


@pytest.mark.parametrize("name", sorted(CONSUMERS))
def test_consumer_runs_from_the_worker_image(synth: Synth, name: str) -> None:
    setting = CONSUMERS[name][0]
    app = synth.raw("application")
    deployment = find_object(app, "Deployment", name)
    assert deployment["spec"]["replicas"] == getattr(synth.config.workload, f"{setting}_replicas")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    (worker,) = _pod(app, "jq-worker")["spec"]["containers"]
    assert container["image"] == worker["image"]
    # `command` replaces the image's jq-worker entrypoint and, without `args`, its CMD.
    assert container["command"] == [name] and "args" not in container
    assert pod["serviceAccountName"] == name
    assert {"configMapRef": {"name": "jq-config"}} in container["envFrom"]
    requests, limits = container["resources"]["requests"], container["resources"]["limits"]
    assert requests["cpu"] and requests["memory"] and limits["memory"] == requests["memory"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


@pytest.mark.parametrize("name", sorted(CONSUMERS))
def test_consumer_probes_and_is_scraped_like_the_worker(synth: Synth, name: str) -> None:
    _, env, group, port = CONSUMERS[name]
    app = synth.raw("application")
    config = find_object(app, "ConfigMap", "jq-config")["data"]
    template = _pod(app, name)
    (container,) = template["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    # It binds where the kubelet and Prometheus reach it, on the port they call.
    assert config[f"{env}_HTTP_HOST"] == "0.0.0.0"
    assert int(config[f"{env}_HTTP_PORT"]) == ports["http"] == port
    assert config[f"{env}_GROUP"] == group
    # Alive through a broker outage (nothing to restart), not ready while it lasts.
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    # Scraped by a Prometheus job of its own name (test_monitoring.py), not by annotations.
    assert "prometheus.io/scrape" not in template["metadata"].get("annotations", {})
    labels = template["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == name
    assert labels["app.kubernetes.io/part-of"] == "jobq"


def test_the_server_gets_key_hashes_and_the_workers_the_key(synth: Synth) -> None:
    """The workers' bootstrap key reaches the server only as a SHA-256 (ESO's sha256sum),
    with the rotation's previous_token and the operator's admin_entries beside it."""
    app = synth.raw("application")
    externals = {
        o["metadata"]["name"]: o for o in manifest_objects(app) if o["kind"] == "ExternalSecret"
    }
    server_auth = externals["jq-server-auth"]["spec"]
    keys = server_auth["target"]["template"]["data"]["JQ_AUTH_BOOTSTRAP_KEYS"]
    assert server_auth["dataFrom"] == [{"extract": {"key": f"{synth.config.prefix}/api-token"}}]
    assert server_auth["target"]["template"]["engineVersion"] == "v2"
    assert '"sha256": "{{ .token | sha256sum }}"' in keys and '"key"' not in keys
    assert "{{ with .previous_token }}" in keys and "{{ with .admin_entries }}" in keys
    worker_token = externals["jq-api-token"]["spec"]["target"]["template"]["data"]
    assert worker_token == {"JQ_TOKEN": "jq_00000000000000b1_{{ .token }}"}
    server = find_object(app, "Deployment", "jq-server")["spec"]["template"]["spec"]
    worker = find_object(app, "Deployment", "jq-worker")["spec"]["template"]["spec"]
    refs = {c["name"]: {e.get("secretRef", {}).get("name") for e in c["envFrom"]}
            for c in server["containers"] + worker["containers"]}  # fmt: skip
    assert "jq-server-auth" in refs["jq-server"] and "jq-api-token" not in refs["jq-server"]
    assert "jq-api-token" in refs["jq-worker"] and "jq-server-auth" not in refs["jq-worker"]


def _render(template: str, values: dict[str, str]) -> str:
    """The three template forms server_auth uses, as ESO's Go templates render them."""
    import hashlib
    import re

    def with_block(match: re.Match[str]) -> str:
        value = values.get(match.group(1))
        return (
            ""
            if not value
            else match.group(2)
            .replace("{{ . }}", value)
            .replace("{{ . | sha256sum }}", hashlib.sha256(value.encode()).hexdigest())
        )

    text = re.sub(r"\{\{ with \.(\w+) \}\}(.*?)\{\{ end \}\}", with_block, template)
    return re.sub(
        r"\{\{ \.(\w+) \| sha256sum \}\}",
        lambda m: hashlib.sha256(values[m.group(1)].encode()).hexdigest(),
        text,
    )


def test_the_rendered_bootstrap_keys_are_accepted_by_the_server_settings(synth: Synth) -> None:
    from jobq.auth.keys import bootstrap_entry, parse_bootstrap
    from jobq.auth.principal import Role

    app = synth.raw("application")
    keys = find_object(app, "ExternalSecret", "jq-server-auth")["spec"]["target"]["template"]
    template = keys["data"]["JQ_AUTH_BOOTSTRAP_KEYS"]
    token, old = "a" * 48, "b" * 48
    admin_key = "jq_00000000000000ad_" + "c" * 43
    admin = bootstrap_entry(admin_key, "*", [Role.ADMIN], [])
    plain = parse_bootstrap(_render(template, {"token": token}))
    assert list(plain) == ["00000000000000b1"]
    assert plain["00000000000000b1"].matches(token)
    rotating = parse_bootstrap(
        _render(template, {"token": token, "previous_token": old, "admin_entries": admin})
    )
    assert rotating["00000000000000b0"].matches(old) and rotating["00000000000000b1"].matches(token)
    assert rotating["00000000000000ad"].matches(admin_key.split("_", 2)[2])


def test_in_cluster_grpc_is_tls_with_the_cert_manager_certificate(synth: Synth) -> None:
    app = synth.raw("application")
    config = find_object(app, "ConfigMap", "jq-config")["data"]
    assert "JQ_PLAINTEXT" not in config
    cert = find_object(app, "Certificate", "jq-server-tls")["spec"]
    assert f"jq-server.{synth.config.namespace}.svc.cluster.local" in cert["dnsNames"]
    address_host = config["JQ_SERVER_ADDRESS"].rsplit(":", 1)[0]
    assert address_host in cert["dnsNames"]

    def mounted(name: str) -> tuple[dict[str, Any], dict[str, str], dict[str, Any]]:
        pod = _pod(app, name)["spec"]
        (container,) = pod["containers"]
        env = {e["name"]: e["value"] for e in container.get("env", [])}
        (mount,) = [m for m in container["volumeMounts"] if m["name"] == "tls"]
        (volume,) = [v for v in pod["volumes"] if v["name"] == "tls"]
        assert volume["secret"]["secretName"] == cert["secretName"]
        return mount, env, volume

    mount, env, _ = mounted("jq-server")
    assert env["JQ_TLS_CERT_FILE"] == f"{mount['mountPath']}/tls.crt"
    assert env["JQ_TLS_KEY_FILE"] == f"{mount['mountPath']}/tls.key"
    mount, env, volume = mounted("jq-worker")
    assert env["JQ_TLS_CA_FILE"] == f"{mount['mountPath']}/ca.crt"
    assert volume["secret"]["items"] == [{"key": "ca.crt", "path": "ca.crt"}]  # never the key
