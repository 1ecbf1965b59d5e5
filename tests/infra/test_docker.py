"""Container images and the local compose stack, checked without a Docker engine."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from jobq_infra_testing import REPO_ROOT

DOCKER = REPO_ROOT / "docker"
DOCKERFILES = {"jq-server": DOCKER / "Dockerfile.server", "jq-worker": DOCKER / "Dockerfile.worker"}


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is not installed (requirements-infra.txt)"
    return path


def test_dockerfiles_pass_hadolint() -> None:
    result = subprocess.run(
        [
            _tool("hadolint"),
            "--config",
            str(REPO_ROOT / ".hadolint.yaml"),
            *map(str, DOCKERFILES.values()),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_image_is_multi_stage_slim_non_root_with_healthcheck(image: str) -> None:
    text = DOCKERFILES[image].read_text()
    stages = re.findall(
        r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, flags=re.MULTILINE | re.IGNORECASE
    )
    assert len(stages) >= 2, "build and runtime must be separate stages"
    runtime_base = stages[-1][0]
    assert runtime_base.startswith("python:3.11") and "slim" in runtime_base
    runtime = text[text.rindex("FROM") :]
    user = re.search(r"^USER\s+(\S+)", runtime, flags=re.MULTILINE)
    assert user and user.group(1).split(":")[0] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK\s", runtime, flags=re.MULTILINE)
    assert "/healthz" in runtime
    assert f'ENTRYPOINT ["{image}"]' in runtime
    # grpc tools and compilers stay in the build stage.
    assert "grpc_tools.protoc" not in runtime


def test_protobufs_are_generated_by_the_repository_script_before_install() -> None:
    # The same command as the repository (make proto): modules and mypy-protobuf stubs.
    for path in DOCKERFILES.values():
        text = path.read_text()
        build = text[: text.rindex("FROM")]
        assert "COPY scripts/gen-proto.sh" in build
        run = re.search(r"PYTHON=(\S+) bash scripts/gen-proto\.sh", build)
        assert run, f"{path.name}: the build stage must run scripts/gen-proto.sh"
        assert run.group(1) == "/opt/protoc/bin/python"
        assert "python -m venv /opt/protoc" in build
        assert build.index("scripts/gen-proto.sh \\") < build.index("pip install .")
        # No protoc of its own, no version of the tools that could drift from pyproject.toml.
        instructions = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
        assert "grpc_tools.protoc" not in instructions
        assert not re.search(r"(grpcio-tools|mypy-protobuf)\s*==", text)
        assert "/opt/protoc" not in text[text.rindex("FROM") :], "tools stay in the build stage"


def test_build_stage_reads_the_tool_pins_from_the_dev_extra() -> None:
    """Runs the build stage's pin extraction on the real pyproject.toml."""
    dev = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["dev"]
    expected = sorted(r for r in dev if r.split("==")[0] in ("grpcio-tools", "mypy-protobuf"))
    assert [r.split("==")[0] for r in expected] == ["grpcio-tools", "mypy-protobuf"]
    for path in DOCKERFILES.values():
        script = re.search(r'python -c "(import tomllib;[^"]+)"', path.read_text())
        assert script, path.name
        # Inside the shell's double quotes "\\n" stays a backslash-n: the code is verbatim.
        result = subprocess.run(
            [sys.executable, "-c", script.group(1)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        assert sorted(result.stdout.split()) == expected


def test_server_image_binds_all_interfaces() -> None:
    text = DOCKERFILES["jq-server"].read_text()
    assert "JQ_GRPC_HOST=0.0.0.0" in text and "JQ_HTTP_HOST=0.0.0.0" in text


def test_compose_file_matches_the_compose_spec() -> None:
    result = subprocess.run(
        [
            _tool("check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            str(DOCKER / "compose.yaml"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_runs_the_backing_services_jobq_needs() -> None:
    services = yaml.safe_load((DOCKER / "compose.yaml").read_text())["services"]
    assert services["postgres"]["image"].startswith("postgres:15")
    assert services["redis"]["image"].startswith("redis:7")
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert "controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"], (
        "Kafka must run in KRaft mode"
    )
    for name in ("postgres", "redis", "kafka"):
        assert "healthcheck" in services[name]


def test_prometheus_scrapes_server_and_worker() -> None:
    config = yaml.safe_load((DOCKER / "prometheus" / "prometheus.yml").read_text())
    targets = {job["job_name"]: job for job in config["scrape_configs"]}
    assert any("8080" in t for t in targets["jq-server"]["static_configs"][0]["targets"])
    assert any("8081" in t for t in targets["jq-worker"]["static_configs"][0]["targets"])
    for job, port in (("jq-result-processor", 8082), ("jq-metrics-aggregator", 8083)):
        consumer = targets[job]
        assert consumer.get("metrics_path", "/metrics") == "/metrics"
        assert f"{job}:{port}" in consumer["static_configs"][0]["targets"]
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    mount = compose["services"]["prometheus"]["volumes"][0]
    assert (DOCKER / mount.split(":")[0]).resolve() == (
        DOCKER / "prometheus" / "prometheus.yml"
    ).resolve()


def test_grafana_is_provisioned_from_the_repository_dashboards() -> None:
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    mounts = dict(v.split(":")[:2] for v in compose["services"]["grafana"]["volumes"])
    assert Path(DOCKER / "../dashboards").resolve() == (REPO_ROOT / "dashboards").resolve()
    dashboards_mount = mounts["../dashboards"]
    provider = yaml.safe_load((DOCKER / "grafana/provisioning/dashboards/jobq.yaml").read_text())[
        "providers"
    ][0]
    assert provider["options"]["path"] == dashboards_mount
    datasource = yaml.safe_load(
        (DOCKER / "grafana/provisioning/datasources/prometheus.yaml").read_text()
    )
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"


@pytest.mark.parametrize(
    ("name", "env", "port"),
    [
        ("jq-result-processor", "JQ_RESULT_PROCESSOR", 8082),
        ("jq-metrics-aggregator", "JQ_METRICS_AGGREGATOR", 8083),
    ],
)
def test_compose_runs_each_consumer_from_the_worker_image(name: str, env: str, port: int) -> None:
    services = yaml.safe_load((DOCKER / "compose.yaml").read_text())["services"]
    consumer, worker = services[name], services["jq-worker"]
    assert consumer["image"] == worker["image"] and consumer["build"] == worker["build"]
    assert consumer["entrypoint"] == [name] and consumer["command"] == []
    settings = consumer["environment"]
    assert settings["JQ_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    # Reachable from the prometheus container on the port its scrape job names.
    assert settings[f"{env}_HTTP_HOST"] == "0.0.0.0"
    assert str(settings[f"{env}_HTTP_PORT"]) == str(port)
    assert f"{port}:{port}" in consumer["ports"]
    # The worker image's HEALTHCHECK probes 8081; this process must bring its own.
    assert any(f"{port}/healthz" in part for part in consumer["healthcheck"]["test"])
    assert consumer["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert "app" in consumer["profiles"]
