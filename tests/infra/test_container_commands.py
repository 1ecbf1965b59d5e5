"""Every jobq container the deploy starts, started here as the cluster or compose would start it.

For each Deployment in the synthesized application stack (every environment) and each jobq
service in docker/compose.yaml, the test builds the exact argv (image ENTRYPOINT/CMD, the
pod's command/args, Kubernetes semantics) and environment (image ENV, ConfigMap, the Secrets
External Secrets renders from their templates), starts it against a real PostgreSQL behind
PgBouncer, a real Kafka and a real jq-server on loopback, and probes the readiness the
manifest names until it answers 200. Init containers must exit 0.

Only what cannot exist on a test machine is substituted, each listed in `SUBSTITUTIONS`:
in-cluster DNS names and the RDS/MSK endpoints (loopback addresses), fixed listen ports (free
ports: other suites run beside this one), 0.0.0.0 (loopback), MSK's IAM over TLS and RDS's
required TLS (the local broker and database speak plaintext), and the image's migrations path.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from containers import (
    DOCKER,
    Container,
    image,
    image_of,
    issue_tls,
    manifests,
    mount_secrets,
    pod_containers,
    render_external_secret,
)
from jobq_infra_testing import ENV_NAMES, REPO_ROOT, Synth

from tests.e2e.conftest import Proc, free_port, wait_until
from tests.harness.kafka import KafkaBroker
from tests.harness.redis import PASSWORD as REDIS_PASSWORD
from tests.http import is_ready
from tests.ops.promql_names import raw_metric_names

# Synth of every environment (shared fixture), a broker and processes on 2 busy cores.
pytestmark = pytest.mark.timeout(900)

BIN = Path(sys.executable).parent
WORKLOADS = ("jq-server", "jq-worker", "jq-result-processor", "jq-metrics-aggregator")
COMPOSE_SERVICES = WORKLOADS
APP_LOGIN = "jobq_app"  # the login the data stack's database-app secret holds

# What differs between a pod and this machine, by kind (see the module docstring).
SUBSTITUTIONS = (
    "in-cluster and AWS endpoint addresses -> loopback",
    "fixed listen ports -> free ports",
    "0.0.0.0 -> 127.0.0.1",
    "Kafka SASL_SSL/AWS_MSK_IAM -> PLAINTEXT; sslmode=require -> disable",
    "ElastiCache rediss+cluster:// endpoint -> a loopback 3-master cluster, plaintext",
    "JQ_MIGRATIONS_DIR /opt/jobq/migrations -> the repository's migrations/",
    "secret volumes' mountPath -> a directory holding the Secret's files",
)


class Backends:
    def __init__(self, pg_server: Any, pg_bouncer: Any, kafka: KafkaBroker, redis: Any) -> None:
        self.pg = pg_server
        self.bouncer = pg_bouncer
        self.kafka = kafka
        self.redis = redis  # a 3-master cluster with AUTH, as ElastiCache's cluster mode

    def fresh_database(self) -> str:
        """An empty database: the migrate step must create the schema itself."""
        name = f"deploy_{uuid.uuid4().hex[:10]}"
        self.pg.execute(f"CREATE DATABASE {name}")
        return name


def _ready(port: int, path: str) -> bool:
    return is_ready(port, path)


def localize(
    env: dict[str, str], addresses: dict[str, str], ports: dict[str, int]
) -> dict[str, str]:
    """Apply SUBSTITUTIONS to one container's environment; ``ports`` collects old -> new."""
    out = {}
    for key, value in env.items():
        for old, new in addresses.items():
            value = value.replace(old, new)
        if key.startswith("JQ_") and key.endswith("_HOST") and value == "0.0.0.0":
            value = "127.0.0.1"
        if key.startswith("JQ_") and key.endswith("_PORT") and value.isdigit():
            ports.setdefault(value, free_port())
            value = str(ports[value])
        if key == "JQ_KAFKA_SECURITY_PROTOCOL":
            value = "PLAINTEXT"
        if key == "JQ_MIGRATIONS_DIR":
            value = str(REPO_ROOT / "migrations")
        out[key] = value
    out.pop("JQ_KAFKA_SASL_MECHANISM", None)
    return out


def process_env(env: dict[str, str]) -> dict[str, str]:
    # Nothing of this shell's own JQ_* leaks in: only what the container would see.
    # The image's PATH puts its venv (/opt/venv/bin) first; here that venv is this one.
    assert env.get("PATH", "/opt/venv/bin:").startswith("/opt/venv/bin:")
    return {**env, "PATH": f"{BIN}:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp")}


def start(
    container: Container,
    addresses: dict[str, str],
    log: Path,
    secrets: dict[str, dict[str, str]] | None = None,
) -> tuple[Proc, int | None]:
    ports: dict[str, int] = {}
    # Secret volumes as files, at a directory of the test's own (the mountPath substituted).
    addresses = addresses | mount_secrets(container, secrets or {}, log.parent / "volumes")
    env = localize(container.env, addresses, ports)
    proc = Proc(container.argv, process_env(env), log)
    probe_port = None
    if container.readiness:
        path, port = container.readiness
        declared = container.ports[port] if isinstance(port, str) else port
        probe_port = ports[str(declared)]
        try:
            wait_until(
                lambda: proc.popen.poll() is not None or _ready(probe_port, path),
                timeout=60,
                interval=0.3,
                what=f"{container.workload}/{container.name} {path}",
            )
        except AssertionError:
            proc.stop()
            raise
        assert proc.popen.poll() is None, f"{container.name} exited:\n{proc.output()}"
    return proc, probe_port


# --- Kubernetes ----------------------------------------------------------------------------


def _cluster_inputs(
    synth: Synth, backends: Backends, dbname: str
) -> tuple[list[Container], dict[str, dict[str, str]], dict[str, str]]:
    objects = manifests(synth.raw("application"))
    ns = synth.config.namespace
    config_maps = {
        o["metadata"]["name"]: dict(o["data"]) for o in objects if o["kind"] == "ConfigMap"
    }
    # The MSK bootstrap string is the data stack's export (resolved at deploy time).
    assert config_maps["jq-config"]["JQ_KAFKA_BOOTSTRAP_SERVERS"].startswith("{import:")
    config_maps["jq-config"]["JQ_KAFKA_BOOTSTRAP_SERVERS"] = backends.kafka.bootstrap_servers
    pg = urllib.parse.urlsplit(backends.pg.url(dbname))
    # RDS's master login owns the schema (the harness's superuser here); the app login is
    # the jobq_app role of migration 0010, which the migrate step must set up.
    owner_secret = {
        "username": pg.username or "",
        "password": "",
        "host": pg.hostname or "",
        "port": str(pg.port),
        "dbname": dbname,
    }
    app_secret = owner_secret | {"username": APP_LOGIN, "password": "app-password"}
    worker_token = "A" * 48  # the generated token's alphabet and length (data stack)
    prefix = synth.config.prefix
    remote = {
        f"{prefix}/database": owner_secret,
        f"{prefix}/database-app": app_secret,
        f"{prefix}/api-token": {"token": worker_token, "previous_token": "B" * 48},
        f"{prefix}/redis-auth": {"token": REDIS_PASSWORD},
        f"{prefix}/console": {"secret": "C" * 64},  # the generated key's alphabet and length
    }
    secrets = {
        o["metadata"]["name"]: render_external_secret(o, remote)
        for o in objects
        if o["kind"] == "ExternalSecret"
    }
    # ElastiCache's configuration endpoint is the data stack's export, and it requires TLS;
    # here a loopback cluster with the same AUTH token speaks plaintext.
    redis_url = urllib.parse.urlsplit(secrets["jq-redis"]["JQ_REDIS_URL"])
    assert redis_url.scheme == "rediss+cluster", redis_url
    assert redis_url.password == REDIS_PASSWORD and "{import:" in redis_url.netloc, redis_url
    local = urllib.parse.urlsplit(backends.redis.url)
    secrets["jq-redis"]["JQ_REDIS_URL"] = urllib.parse.urlunsplit(
        ("redis+cluster", f":{REDIS_PASSWORD}@127.0.0.1:{local.port}", "", "", "")
    )
    # cert-manager's Certificates: their Secrets hold what it would issue.
    for o in objects:
        if o["kind"] == "Certificate":
            secrets[o["spec"]["secretName"]] = issue_tls(o["spec"]["dnsNames"])
    containers = [
        c
        for o in objects
        if o["kind"] == "Deployment"
        for c in pod_containers(o, config_maps, secrets)
    ]
    return (
        containers,
        secrets,
        {
            f"jq-pgbouncer.{ns}.svc.cluster.local:6432": f"127.0.0.1:{backends.bouncer.port}",
            "sslmode=require": "sslmode=disable",
        },
    )


@pytest.fixture(scope="module")
def backends(
    pg_server: Any, pg_bouncer: Any, kafka_broker: KafkaBroker, redis_cluster: Any
) -> Backends:
    return Backends(pg_server, pg_bouncer, kafka_broker, redis_cluster)


@pytest.mark.parametrize("env_name", ENV_NAMES)
def test_every_container_of_the_synthesized_manifests_starts_and_is_ready(
    env_name: str, synths: dict[str, Synth], backends: Backends, tmp_path: Path
) -> None:
    synth = synths[env_name]
    dbname = backends.fresh_database()
    containers, secrets, addresses = _cluster_inputs(synth, backends, dbname)
    by_workload = {c.workload for c in containers}
    assert by_workload == set(WORKLOADS), by_workload
    ns = synth.config.namespace
    server = next(c for c in containers if c.workload == "jq-server" and not c.init)
    procs: list[Proc] = []
    try:
        # Init containers first, as the kubelet runs them: they must exit 0.
        for init in (c for c in containers if c.init):
            proc, _ = start(init, addresses, tmp_path / f"{init.name}.log", secrets)
            assert proc.wait(120) == 0, proc.output()
            proc.stop()
        proc, _ = start(server, addresses, tmp_path / "jq-server.log", secrets)
        procs.append(proc)
        # The clients' JQ_SERVER_ADDRESS names the Service; here it is the server's free port.
        service = f"jq-server.{ns}.svc.cluster.local:{server.ports['grpc']}"
        addresses = addresses | {service: f"127.0.0.1:{_env_of(proc)['JQ_GRPC_PORT']}"}
        for c in containers:
            if c.init or c is server:
                continue
            proc, _ = start(c, addresses, tmp_path / f"{c.workload}.log", secrets)
            procs.append(proc)
        # The server coordinates through the cluster its Secret names, and is not in the
        # fallback a wrong URL or token would leave it in (ADR 0015).
        metrics_port = _env_of(procs[0])["JQ_HTTP_PORT"]
        wait_until(
            lambda: _uses_redis(_scrape(metrics_port)),
            timeout=60,
            what="jq-server's calls to Redis, outside fallback",
        )
        # Every session jq-server holds (through PgBouncer, and its direct LISTEN and leader
        # lock) is the app login's; the owner's was the migrate step's alone (ADR 0019).
        assert _logins(backends, dbname) == {APP_LOGIN}
    finally:
        for proc in reversed(procs):
            proc.stop()


def _logins(backends: Backends, dbname: str) -> set[str]:
    import psycopg

    with psycopg.connect(backends.pg.url(dbname), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT DISTINCT usename FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (dbname,),
        ).fetchall()
    return {r[0] for r in rows}


def _scrape(port: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return str(r.read().decode())


def _uses_redis(scrape: str) -> bool:
    lines = scrape.splitlines()
    calls = [
        float(line.rsplit(" ", 1)[1])
        for line in lines
        if line.startswith("jq_redis_operation_duration_seconds_count{")
    ]
    return (
        sum(calls) > 0
        and "jq_redis_fallback 0.0" in lines
        and not any(
            line.startswith("jq_redis_errors_total{") and not line.endswith(" 0.0")
            for line in lines
        )
    )


def _env_of(proc: Proc) -> dict[str, str]:
    with open(f"/proc/{proc.pid}/environ", "rb") as f:
        pairs = f.read().split(b"\0")
    return dict(p.decode().split("=", 1) for p in pairs if b"=" in p)


# --- docker compose ------------------------------------------------------------------------


def compose_containers() -> list[Container]:
    services = yaml.safe_load((DOCKER / "compose.yaml").read_text())["services"]
    found = []
    for name in COMPOSE_SERVICES:
        spec = services[name]
        image_name = image_of(spec["image"])
        assert image_name, spec["image"]
        img = image(image_name)
        entrypoint = spec.get("entrypoint")
        command = spec.get("command")
        if entrypoint is not None:
            argv = [*entrypoint, *(command or [])]
        else:
            argv = [*img.entrypoint, *(img.cmd if command is None else command)]
        env = {**img.env, **{str(k): str(v) for k, v in spec.get("environment", {}).items()}}
        port_key = {
            "jq-server": "JQ_HTTP_PORT",
            "jq-worker": "JQ_WORKER_HTTP_PORT",
            "jq-result-processor": "JQ_RESULT_PROCESSOR_HTTP_PORT",
            "jq-metrics-aggregator": "JQ_METRICS_AGGREGATOR_HTTP_PORT",
        }[name]
        found.append(
            Container(
                workload=name,
                name=name,
                image=image_name,
                argv=argv,
                env=env,
                ports={"http": int(env[port_key])},
                readiness=("/readyz", "http"),
            )
        )
    return found


def test_every_jobq_service_of_docker_compose_starts_and_is_ready(
    backends: Backends, tmp_path: Path
) -> None:
    dbname = backends.fresh_database()
    addresses = {
        "postgresql://jobq:jobq@postgres:5432/jobq": backends.pg.url(dbname),
        "kafka:9092": backends.kafka.bootstrap_servers,
    }
    containers = compose_containers()
    procs: list[Proc] = []
    exported: set[str] = set()
    try:
        server = containers[0]
        proc, port = start(server, addresses, tmp_path / "jq-server.log")
        procs.append(proc)
        addresses["jq-server:50051"] = f"127.0.0.1:{_env_of(proc)['JQ_GRPC_PORT']}"
        ports = [port]
        for c in containers[1:]:
            proc, port = start(c, addresses, tmp_path / f"{c.workload}.log")
            procs.append(proc)
            ports.append(port)
        for port in ports:
            assert port is not None
            exported |= scraped_names(port)
        # With Kafka configured, the leader (the only server here) exports the outbox gauges.
        server_port = ports[0]
        assert server_port is not None
        wait_until(
            lambda: port_has_sample(server_port, "jq_outbox_backlog"),
            timeout=30,
            what="the leader's outbox gauge",
        )
    finally:
        for proc in reversed(procs):
            proc.stop()

    # Every jq_* series an alert or recording rule reads is one these processes export
    # (the rules Prometheus loads in the cluster are alerts/jobq.rules.yml, unchanged).
    rules = yaml.safe_load((REPO_ROOT / "alerts" / "jobq.rules.yml").read_text())
    read = {
        base_name(name)
        for group in rules["groups"]
        for rule in group["rules"]
        for name in raw_metric_names(rule["expr"])
    }
    assert read and read <= exported, sorted(read - exported)
    # And no _created series (issue 14): timestamps that read like counts.
    assert not any(name.endswith("_created") for name in exported)


def scraped_names(port: int) -> set[str]:
    """Every name a real /metrics declares or samples (counters with _total, as PromQL)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            names.add(line.split()[2])
        elif line and not line.startswith("#"):
            names.add(line.split("{", 1)[0].split(" ", 1)[0])
    return names


def port_has_sample(port: int, name: str) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        lines = r.read().decode().splitlines()
    return any(line.startswith(f"{name} ") or line.startswith(f"{name}{{") for line in lines)


def base_name(name: str) -> str:
    for suffix in ("_bucket", "_count", "_sum"):
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


# --- an application's own worker image (docs/deploy.md "Your own worker image") ---------


def _doc_dockerfile() -> str:
    text = (REPO_ROOT / "docs" / "deploy.md").read_text()
    section = text.split("## Your own worker image", 1)[1]
    return section.split("```dockerfile\n", 1)[1].split("```", 1)[0]


def test_a_child_image_from_the_docs_runs_its_own_tasks(backends: Backends, tmp_path: Path) -> None:
    """The snippet's FROM, COPY and ENV applied to the jq-worker image's command: the worker
    registers the application's task, served by a real jq-server."""
    snippet = _doc_dockerfile()
    lines = [line.split(None, 1) for line in snippet.strip().splitlines()]
    assert lines[0][0] == "FROM" and lines[0][1].startswith("jq-worker:")
    base = image("jq-worker")
    env = dict(base.env)
    home = tmp_path / "home" / "jobq"  # the image's WORKDIR, where the worker starts
    home.mkdir(parents=True)
    for word, rest in lines[1:]:
        if word == "ENV":
            key, _, value = rest.partition("=")
            env[key] = value
        elif word == "COPY":
            dest = rest.split()[-1]
            assert dest.startswith("/home/jobq/"), "copied where the worker imports from"
            package = home / dest.removeprefix("/home/jobq/").strip("/")
            package.mkdir(parents=True)
            (package / "__init__.py").write_text("")
    module = env["JQ_TASKS"]
    (home / Path(*module.split("."))).with_suffix(".py").write_text(
        "from jobq.worker.task import task\n\n\n"
        "@task('myapp.hello')\nasync def hello(payload):\n    return payload\n"
    )
    dbname = backends.fresh_database()
    server_img = image("jq-server")
    server_env = localize(
        {
            **server_img.env,
            "JQ_DATABASE_URL": backends.pg.url(dbname),
            "JQ_AUTH_UNAUTHENTICATED": "true",
        },
        {},
        {},
    )
    server = Proc(server_img.entrypoint, process_env(server_env), tmp_path / "server.log")
    worker = None
    log = None
    try:
        http = int(server_env["JQ_HTTP_PORT"])
        wait_until(
            lambda: _ready(http, "/readyz"), timeout=60, interval=0.3, what="jq-server /readyz"
        )
        worker_env = localize(
            {**env, "JQ_SERVER_ADDRESS": f"127.0.0.1:{server_env['JQ_GRPC_PORT']}"}, {}, {}
        )
        log = (tmp_path / "worker.log").open("wb")  # closed in finally
        worker = subprocess.Popen(
            [*base.entrypoint, *base.cmd],
            env=process_env(worker_env),
            cwd=home,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        port = int(worker_env["JQ_WORKER_HTTP_PORT"])
        wait_until(
            lambda: worker.poll() is not None or _ready(port, "/readyz"),
            timeout=60,
            interval=0.3,
            what="jq-worker /readyz",
        )
        output = (tmp_path / "worker.log").read_text()
        assert worker.poll() is None, output
        assert "myapp.hello" in output
    finally:
        if worker is not None and worker.poll() is None:
            worker.terminate()
            worker.wait(20)
        if log is not None:
            log.close()
        server.stop()
