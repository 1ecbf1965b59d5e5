"""What runs in the namespace: server, workers, PgBouncer, scaling, budgets, secrets."""

from __future__ import annotations

from jobq_infra_testing import Synth, find_object, manifest_objects


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
    assert set(deployments) == {"jq-server", "jq-worker", "jq-pgbouncer"}
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
    assert config["JQ_KAFKA_SASL_MECHANISM"] == "OAUTHBEARER"
    server = find_object(app, "Deployment", "jq-server")["spec"]["template"]["spec"]
    (container,) = server["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert server["initContainers"][0]["command"][-1].endswith("jq-server migrate")


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
    assert {"jq-database", "jq-redis", "jq-api-token", "jq-pgbouncer"} <= set(externals)
    database = externals["jq-database"]["spec"]
    assert database["data"][0]["remoteRef"]["key"] == f"{synth.config.prefix}/database"
    # Applications go through PgBouncer; the direct URL is only for migrations.
    assert "jq-pgbouncer" in database["target"]["template"]["data"]["JQ_DATABASE_URL"]
    assert not any(o["kind"] == "Secret" for o in manifest_objects(app))


def test_images_come_from_the_environment_ecr(synth: Synth) -> None:
    # Without -c image-tag the app synthesizes with a placeholder tag that no registry holds.
    app = synth.raw("application")
    for name in ("jq-server", "jq-worker"):
        (container,) = find_object(app, "Deployment", name)["spec"]["template"]["spec"][
            "containers"
        ]
        assert ".dkr.ecr." in container["image"] and container["image"].endswith(":unreleased")
