"""The jobq workloads on Kubernetes: server, worker, PgBouncer, their scaling and disruption budgets.

Autoscaling choice: workers scale with a KEDA ScaledObject and a Prometheus
trigger on ``jq_job_queue_depth``. An HPA on an external metric would need the
prometheus-adapter and its rule file kept in step with the query; KEDA keeps the
PromQL next to the Deployment it scales, can scale an idle dev queue to zero,
and still drives a normal HPA underneath (so ``kubectl get hpa`` keeps working).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infra.config import WorkloadConfig
from infra.k8s.identity import (
    EXTERNAL_SECRETS_API,
    KAFKA_TOPIC_PREFIX,
    METRICS_AGGREGATOR_GROUP,
    METRICS_AGGREGATOR_SA,
    RESULT_PROCESSOR_GROUP,
    RESULT_PROCESSOR_SA,
    SECRET_STORE,
    SERVER_SA,
    WORKER_SA,
)

Manifest = dict[str, Any]

GRPC_PORT = 50051
HTTP_PORT = 8080
WORKER_HTTP_PORT = 8081
RESULT_PROCESSOR_HTTP_PORT = 8082
METRICS_AGGREGATOR_HTTP_PORT = 8083
PGBOUNCER_PORT = 6432
# How long a stopping server keeps serving before SIGTERM: longer than the ALB's
# deregistration takes to reach every load balancer node (and kube-proxy's endpoint update).
PRESTOP_SECONDS = 15
# Stakater Reloader (installed by the platform stack) restarts a Deployment, in rolling
# order, when a Secret or ConfigMap it reads changes: a rotated database password or API
# key reaches the pods within External Secrets' refresh, without a manual restart.
RELOAD_ON_CHANGE = {"reloader.stakater.com/auto": "true"}

CONFIG_MAP = "jq-config"
# The application's login (jobq-<env>/database-app), for jq-server and PgBouncer alike: one
# Secret, so a rotation changes both at the same refresh and Reloader restarts them together.
DATABASE_SECRET = "jq-database"
# The owner's login and the app login to set up: the migrate init container's alone.
MIGRATE_SECRET = "jq-database-owner"
TOKEN_SECRET = "jq-api-token"  # the workers' JQ_TOKEN
SERVER_AUTH_SECRET = "jq-server-auth"  # the server's JQ_AUTH_BOOTSTRAP_KEYS: hashes only
# The id of the workers' bootstrap key: its secret half is the generated `token` of the
# jobq-<env>/api-token secret (alphanumeric, 48 characters: a valid jq_<id>_<secret> key).
WORKER_KEY_ID = "00000000000000b1"
PREVIOUS_WORKER_KEY_ID = "00000000000000b0"
CONSOLE_SECRET = "jq-console"  # the server's JQ_CONSOLE_SECRET: one key for every replica
REDIS_SECRET = "jq-redis"  # the server's JQ_REDIS_URL, AUTH token included
# cert-manager's Secret for jq-server's certificate (tls.crt, tls.key, ca.crt) and where pods mount it.
SERVER_TLS_SECRET = "jq-server-tls"
TLS_DIR = "/etc/jobq/tls"


@dataclass(frozen=True)
class Endpoints:
    """Where the backing services are, as resolved by the data stack (CloudFormation tokens)."""

    database_secret_name: str  # the master (owner) login: the migrate step's alone
    database_app_secret_name: str  # the application's login (ADR 0019)
    api_token_secret_name: str
    console_secret_name: str
    kafka_bootstrap: str
    region: str
    # ElastiCache's configuration endpoint (host:port) and its AUTH token's secret.
    redis_address: str
    redis_secret_name: str


@dataclass(frozen=True)
class Images:
    server: str
    worker: str
    pgbouncer: str


def _labels(component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": component, "app.kubernetes.io/part-of": "jobq"}


_RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def _zone_spread(component: str) -> list[Manifest]:
    return [
        {
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": _labels(component)},
        }
    ]


def config_map(ns: str, endpoints: Endpoints) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": CONFIG_MAP, "namespace": ns, "labels": _labels("jq-config")},
        "data": {
            "JQ_GRPC_HOST": "0.0.0.0",
            "JQ_GRPC_PORT": str(GRPC_PORT),
            "JQ_HTTP_HOST": "0.0.0.0",
            "JQ_HTTP_PORT": str(HTTP_PORT),
            "JQ_WORKER_HTTP_PORT": str(WORKER_HTTP_PORT),
            "JQ_RESULT_PROCESSOR_HTTP_HOST": "0.0.0.0",
            "JQ_RESULT_PROCESSOR_HTTP_PORT": str(RESULT_PROCESSOR_HTTP_PORT),
            # The group its IRSA role may use (infra/stacks/platform.py).
            "JQ_RESULT_PROCESSOR_GROUP": RESULT_PROCESSOR_GROUP,
            "JQ_METRICS_AGGREGATOR_HTTP_HOST": "0.0.0.0",
            "JQ_METRICS_AGGREGATOR_HTTP_PORT": str(METRICS_AGGREGATOR_HTTP_PORT),
            "JQ_METRICS_AGGREGATOR_GROUP": METRICS_AGGREGATOR_GROUP,
            "JQ_SERVER_ADDRESS": f"jq-server.{ns}.svc.cluster.local:{GRPC_PORT}",
            # Pod to pod gRPC is TLS: jq-server presents the cert-manager certificate
            # jq-server-tls (in-cluster CA, infra/k8s/certificates.py); clients verify it
            # with that CA's ca.crt (JQ_TLS_CA_FILE, set per container). No JQ_PLAINTEXT.
            "JQ_KAFKA_BOOTSTRAP_SERVERS": endpoints.kafka_bootstrap,
            # MSK with IAM auth on port 9098: jobq's AWS_MSK_IAM mechanism (librdkafka
            # OAUTHBEARER with a token signed for JQ_AWS_REGION by the pod's IRSA role).
            "JQ_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "JQ_KAFKA_SASL_MECHANISM": "AWS_MSK_IAM",
            "JQ_AWS_REGION": endpoints.region,
            # The IRSA policies grant only topics named "jobq.*" (infra/stacks/platform.py).
            "JQ_KAFKA_TOPIC_PREFIX": KAFKA_TOPIC_PREFIX,
            "AWS_REGION": endpoints.region,
            "JQ_LOG_FORMAT": "json",
        },
    }


def external_secrets(ns: str, endpoints: Endpoints) -> list[Manifest]:
    """Kubernetes Secrets rendered by External Secrets from Secrets Manager.

    Applications reach PostgreSQL through PgBouncer; only the migration step and
    PgBouncer itself use the direct address (advisory locks do not survive
    transaction pooling).
    """
    pgbouncer_host = f"jq-pgbouncer.{ns}.svc.cluster.local"

    def external(name: str, secret_name: str, template: dict[str, str], keys: list[str]) -> Manifest:
        return {
            "apiVersion": EXTERNAL_SECRETS_API,
            "kind": "ExternalSecret",
            "metadata": {"name": name, "namespace": ns, "labels": _labels(name)},
            "spec": {
                # Rotation changes the secret in Secrets Manager; this is how soon pods see it.
                "refreshInterval": "1h",
                "secretStoreRef": {"name": SECRET_STORE, "kind": "SecretStore"},
                "target": {"name": name, "creationPolicy": "Owner", "template": {"data": template}},
                "data": [
                    {"secretKey": key, "remoteRef": {"key": secret_name, "property": key}} for key in keys
                ],
            },
        }

    return [
        external(
            DATABASE_SECRET,
            endpoints.database_app_secret_name,
            {
                "JQ_DATABASE_URL": "postgresql://{{ .username }}:{{ .password }}@"
                + pgbouncer_host
                + f":{PGBOUNCER_PORT}/{{{{ .dbname }}}}",
                "JQ_DATABASE_DIRECT_URL": "postgresql://{{ .username }}:{{ .password }}@{{ .host }}:{{ .port }}/{{ .dbname }}?sslmode=require",
                # PgBouncer's (edoburu/pgbouncer): it logs in to RDS as the same app login.
                "DB_HOST": "{{ .host }}",
                "DB_PORT": "{{ .port }}",
                "DB_USER": "{{ .username }}",
                "DB_PASSWORD": "{{ .password }}",
                "DB_NAME": "{{ .dbname }}",
            },
            ["username", "password", "host", "port", "dbname"],
        ),
        migrate_secret(ns, endpoints),
        external(
            TOKEN_SECRET,
            endpoints.api_token_secret_name,
            {"JQ_TOKEN": f"jq_{WORKER_KEY_ID}_{{{{ .token }}}}"},
            ["token"],
        ),
        server_auth(ns, endpoints.api_token_secret_name),
        # Console sessions are cookies signed with this key (ADR 0020); a replica with a key
        # of its own would refuse every login made through another.
        external(
            CONSOLE_SECRET,
            endpoints.console_secret_name,
            {"JQ_CONSOLE_SECRET": "{{ .secret }}"},
            ["secret"],
        ),
        # Coordination (ADR 0015): a cluster-mode group, TLS required, AUTH by token. The
        # token is alphanumeric (infra/components/cache.py), so it needs no URL escaping.
        external(
            REDIS_SECRET,
            endpoints.redis_secret_name,
            {"JQ_REDIS_URL": "rediss+cluster://:{{ .token }}@" + endpoints.redis_address},
            ["token"],
        ),
    ]


def migrate_secret(ns: str, endpoints: Endpoints) -> Manifest:
    """The migrate step's login: the owner's, straight to RDS (DDL needs a session), and the
    app login it sets up after migrating (`jq-server migrate` with JQ_DATABASE_APP_USER)."""
    owner = ["username", "password", "host", "port", "dbname"]
    return {
        "apiVersion": EXTERNAL_SECRETS_API,
        "kind": "ExternalSecret",
        "metadata": {"name": MIGRATE_SECRET, "namespace": ns, "labels": _labels(MIGRATE_SECRET)},
        "spec": {
            "refreshInterval": "1h",
            "secretStoreRef": {"name": SECRET_STORE, "kind": "SecretStore"},
            "target": {
                "name": MIGRATE_SECRET,
                "creationPolicy": "Owner",
                "template": {
                    "data": {
                        "JQ_DATABASE_URL": "postgresql://{{ .owner_username }}:{{ .owner_password }}@"
                        "{{ .owner_host }}:{{ .owner_port }}/{{ .owner_dbname }}?sslmode=require",
                        "JQ_DATABASE_APP_USER": "{{ .app_username }}",
                        "JQ_DATABASE_APP_PASSWORD": "{{ .app_password }}",
                    }
                },
            },
            "data": [
                {"secretKey": f"owner_{k}", "remoteRef": {"key": endpoints.database_secret_name, "property": k}}
                for k in owner
            ]
            + [
                {"secretKey": f"app_{k}", "remoteRef": {"key": endpoints.database_app_secret_name, "property": k}}
                for k in ("username", "password")
            ],
        },
    }


def _worker_entry(key_id: str, secret: str) -> str:
    # Hash-only: the server's Secret never holds a key (sha256sum is ESO's sprig function).
    return (
        f'{{"id": "{key_id}", "sha256": "{{{{ {secret} | sha256sum }}}}", '
        '"tenant": "*", "roles": ["worker"]}'
    )


def server_auth(ns: str, secret_name: str) -> Manifest:
    """JQ_AUTH_BOOTSTRAP_KEYS from jobq-<env>/api-token (docs/deploy.md "API keys"):

    - `token` (generated): the workers' key, accepted by its hash;
    - `previous_token` (optional, during a rotation): the old one, accepted too, so workers
      can move to the new token without a refused call;
    - `admin_entries` (optional): hash-only entries printed by `jq-ctl keys bootstrap`,
      comma-separated, e.g. the first admin's.
    """
    keys = (
        "["
        + _worker_entry(WORKER_KEY_ID, ".token")
        + "{{ with .previous_token }}, "
        + _worker_entry(PREVIOUS_WORKER_KEY_ID, ".")
        + "{{ end }}"
        + "{{ with .admin_entries }}, {{ . }}{{ end }}"
        + "]"
    )
    return {
        "apiVersion": EXTERNAL_SECRETS_API,
        "kind": "ExternalSecret",
        "metadata": {
            "name": SERVER_AUTH_SECRET,
            "namespace": ns,
            "labels": _labels(SERVER_AUTH_SECRET),
        },
        "spec": {
            "refreshInterval": "1h",
            "secretStoreRef": {"name": SECRET_STORE, "kind": "SecretStore"},
            "target": {
                "name": SERVER_AUTH_SECRET,
                "creationPolicy": "Owner",
                "template": {"engineVersion": "v2", "data": {"JQ_AUTH_BOOTSTRAP_KEYS": keys}},
            },
            # Every property of the secret, so the optional ones may be absent.
            "dataFrom": [{"extract": {"key": secret_name}}],
        },
    }




def _env_from(*secrets: str) -> list[Manifest]:
    return [{"configMapRef": {"name": CONFIG_MAP}}] + [{"secretRef": {"name": s}} for s in secrets]


def server(ns: str, cfg: WorkloadConfig, images: Images, *, certificate_arn: str) -> list[Manifest]:
    """jq-server: Deployment, Service, PDB and the Ingress whose ALB serves
    ``certificate_arn`` (the platform stack's DNS-validated certificate for the host);
    external-dns points the host's Route 53 record at that ALB (ADR 0019)."""
    labels = _labels("jq-server")
    container_common = {
        "image": images.server,
        "securityContext": _RESTRICTED_CONTAINER,
        "envFrom": _env_from(DATABASE_SECRET, SERVER_AUTH_SECRET, REDIS_SECRET, CONSOLE_SECRET),
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "jq-server", "namespace": ns, "labels": labels, "annotations": RELOAD_ON_CHANGE},
        "spec": {
            "replicas": cfg.server_replicas,
            "selector": {"matchLabels": labels},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": SERVER_SA,
                    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                    "topologySpreadConstraints": _zone_spread("jq-server"),
                    "terminationGracePeriodSeconds": 60,
                    # Migrations run before the new version serves; the migration tool
                    # takes a lock, so replicas starting together apply them once.
                    # Only this step sees the owner's login (ADR 0019): it migrates, then gives
                    # the app login its password and grants; jq-server runs as the app login.
                    "initContainers": [
                        {
                            **container_common,
                            "envFrom": _env_from(SERVER_AUTH_SECRET, REDIS_SECRET, MIGRATE_SECRET),
                            "name": "migrate",
                            "command": ["jq-server", "migrate"],
                        }
                    ],
                    "containers": [
                        {
                            **container_common,
                            "name": "jq-server",
                            "ports": [
                                {"name": "grpc", "containerPort": GRPC_PORT},
                                {"name": "http", "containerPort": HTTP_PORT},
                            ],
                            "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 5},
                            "livenessProbe": {
                                "httpGet": {"path": "/healthz", "port": "http"},
                                "periodSeconds": 10,
                                "failureThreshold": 3,
                            },
                            # Keep serving while the ALB and kube-proxy stop routing here: the
                            # target deregisters while the pod still answers, then SIGTERM
                            # drains what is in flight (graceful stop) inside the grace period.
                            "lifecycle": {"preStop": {"sleep": {"seconds": PRESTOP_SECONDS}}},
                            "resources": {
                                "requests": {"cpu": cfg.server_cpu, "memory": cfg.server_memory},
                                "limits": {"memory": cfg.server_memory},
                            },
                            "env": [
                                # The init container migrated; the app login could not (no DDL).
                                {"name": "JQ_MIGRATE_ON_START", "value": "false"},
                                {"name": "JQ_TLS_CERT_FILE", "value": f"{TLS_DIR}/tls.crt"},
                                {"name": "JQ_TLS_KEY_FILE", "value": f"{TLS_DIR}/tls.key"},
                            ],
                            "volumeMounts": [
                                {"name": "tmp", "mountPath": "/tmp"},
                                {"name": "tls", "mountPath": TLS_DIR, "readOnly": True},
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "tmp", "emptyDir": {}},
                        {"name": "tls", "secret": {"secretName": SERVER_TLS_SECRET}},
                    ],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "jq-server", "namespace": ns, "labels": labels},
        "spec": {
            "type": "ClusterIP",
            "selector": labels,
            "ports": [
                {"name": "grpc", "port": GRPC_PORT, "targetPort": "grpc", "appProtocol": "grpc"},
                {"name": "http", "port": HTTP_PORT, "targetPort": "http", "appProtocol": "http"},
            ],
        },
    }
    ingress = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": "jq-server",
            "namespace": ns,
            "labels": labels,
            "annotations": {
                "alb.ingress.kubernetes.io/scheme": cfg.ingress_scheme,
                "alb.ingress.kubernetes.io/target-type": "ip",
                # gRPC needs HTTP/2 end to end: an HTTPS listener and GRPC targets.
                "alb.ingress.kubernetes.io/listen-ports": '[{"HTTPS": 443}]',
                "alb.ingress.kubernetes.io/backend-protocol-version": "GRPC",
                # The pods serve TLS only; the ALB does not verify the in-cluster CA.
                "alb.ingress.kubernetes.io/backend-protocol": "HTTPS",
                "alb.ingress.kubernetes.io/healthcheck-path": "/grpc.health.v1.Health/Check",
                "alb.ingress.kubernetes.io/success-codes": "0",
                "alb.ingress.kubernetes.io/ssl-policy": "ELBSecurityPolicy-TLS13-1-2-2021-06",
                # Named, not discovered by host: the one the platform stack validated.
                "alb.ingress.kubernetes.io/certificate-arn": certificate_arn,
            },
        },
        "spec": {
            "ingressClassName": "alb",
            "tls": [{"hosts": [cfg.ingress_host]}],
            "rules": [
                {
                    "host": cfg.ingress_host,
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": "jq-server", "port": {"name": "grpc"}}},
                            }
                        ]
                    },
                }
            ],
        },
    }
    return [deployment, service, ingress, _pdb(ns, "jq-server", max_unavailable=1)]


def worker(ns: str, cfg: WorkloadConfig, images: Images, *, prometheus_url: str) -> list[Manifest]:
    labels = _labels("jq-worker")
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "jq-worker", "namespace": ns, "labels": labels, "annotations": RELOAD_ON_CHANGE},
        "spec": {
            # No "replicas": KEDA's HPA owns the count, and a value here would be re-applied
            # (and fight the HPA) on every deploy. Kubernetes starts the Deployment at 1.
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": WORKER_SA,
                    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                    "topologySpreadConstraints": _zone_spread("jq-worker"),
                    # Room for running jobs to finish after SIGTERM before their lease lapses.
                    "terminationGracePeriodSeconds": cfg.worker_shutdown_grace_seconds,
                    "containers": [
                        {
                            "name": "jq-worker",
                            "image": images.worker,
                            "args": [
                                "--tasks", cfg.worker_tasks_module,
                                "--concurrency", str(cfg.worker_concurrency),
                                "--queues", ",".join(cfg.worker_queues),
                            ],
                            "envFrom": _env_from(TOKEN_SECRET),
                            "ports": [{"name": "http", "containerPort": WORKER_HTTP_PORT}],
                            "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10},
                            # 503 until registered with the server: a worker that cannot reach
                            # jq-server is not counted ready during a rollout.
                            "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 10},
                            "securityContext": _RESTRICTED_CONTAINER,
                            "resources": {
                                "requests": {"cpu": cfg.worker_cpu, "memory": cfg.worker_memory},
                                "limits": {"memory": cfg.worker_memory},
                            },
                            "env": [{"name": "JQ_TLS_CA_FILE", "value": f"{TLS_DIR}/ca.crt"}],
                            "volumeMounts": [
                                {"name": "tmp", "mountPath": "/tmp"},
                                {"name": "tls", "mountPath": TLS_DIR, "readOnly": True},
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "tmp", "emptyDir": {}},
                        # Only the CA's certificate: a worker never holds the server's key.
                        {"name": "tls", "secret": {"secretName": SERVER_TLS_SECRET,
                                                   "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    ],
                },
            },
        },
    }
    queues = "|".join(cfg.worker_queues)
    scaled_object = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "jq-worker", "namespace": ns, "labels": labels},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "jq-worker"},
            "minReplicaCount": cfg.worker_min_replicas,
            "maxReplicaCount": cfg.worker_max_replicas,
            "pollingInterval": 15,
            "cooldownPeriod": 300,
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "behavior": {
                        # Scale down slowly: a worker leaving mid-burst only costs a lease timeout.
                        "scaleDown": {"stabilizationWindowSeconds": 300, "policies": [{"type": "Percent", "value": 25, "periodSeconds": 60}]},
                    }
                }
            },
            "triggers": [
                {
                    "type": "prometheus",
                    "metricType": "AverageValue",
                    "metadata": {
                        "serverAddress": prometheus_url,
                        # One leader exports the depth (jq-server's cluster gauges); max by
                        # queue also reads one value during a leader hand-over, when two
                        # replicas may briefly both have a sample.
                        "query": (
                            "sum(max by (queue) ("
                            f'jq_job_queue_depth{{namespace="{ns}",state="queued",queue=~"{queues}"}}))'
                        ),
                        "threshold": str(cfg.jobs_per_worker),
                        "activationThreshold": "1",
                        "ignoreNullValues": "false",
                    },
                }
            ],
        },
    }
    # Workers drain on SIGTERM; at most a quarter leave at once during node rotation.
    pdb = _pdb(ns, "jq-worker", max_unavailable="25%")
    return [deployment, scaled_object, pdb]


def result_processor(ns: str, cfg: WorkloadConfig, images: Images) -> list[Manifest]:
    """jq-result-processor: the jobq-result-processor consumer group on job.completed and
    job.dead-lettered, one JSON line per finished job on stdout.

    It runs from the jq-worker image, which installs the whole jobq package (console
    script included) and nothing task-specific it needs; only the entrypoint differs.
    Replicas share the topics' partitions through the group, so more replicas than
    partitions (JQ_KAFKA_TOPIC_PARTITIONS) sit idle.
    """
    labels = _labels("jq-result-processor")
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "jq-result-processor", "namespace": ns, "labels": labels, "annotations": RELOAD_ON_CHANGE},
        "spec": {
            "replicas": cfg.result_processor_replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": RESULT_PROCESSOR_SA,
                    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                    "topologySpreadConstraints": _zone_spread("jq-result-processor"),
                    # SIGTERM: it finishes writing the batch in hand and commits its offsets.
                    "terminationGracePeriodSeconds": 30,
                    "containers": [
                        {
                            "name": "jq-result-processor",
                            "image": images.worker,
                            # Replaces the image's jq-worker entrypoint and its default args.
                            "command": ["jq-result-processor"],
                            "envFrom": _env_from(),
                            "ports": [{"name": "http", "containerPort": RESULT_PROCESSOR_HTTP_PORT}],
                            "livenessProbe": {
                                "httpGet": {"path": "/healthz", "port": "http"},
                                "periodSeconds": 10,
                                "failureThreshold": 3,
                            },
                            # 503 while Kafka is unreachable or no partition is assigned; the
                            # liveness probe stays on /healthz so an outage restarts nothing.
                            "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 10},
                            "securityContext": _RESTRICTED_CONTAINER,
                            "resources": {
                                "requests": {"cpu": cfg.result_processor_cpu, "memory": cfg.result_processor_memory},
                                "limits": {"memory": cfg.result_processor_memory},
                            },
                            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                        }
                    ],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }
    # A member leaving triggers a rebalance; one at a time keeps the group consuming.
    return [deployment, _pdb(ns, "jq-result-processor", max_unavailable=1)]


def metrics_aggregator(ns: str, cfg: WorkloadConfig, images: Images) -> list[Manifest]:
    """jq-metrics-aggregator: the jobq-metrics-aggregator consumer group on every job topic,
    cluster-wide jq_cluster_* metrics on its /metrics (scraped through the pod annotations).

    From the jq-worker image, like jq-result-processor; replicas split the partitions and
    Prometheus sums them.
    """
    labels = _labels("jq-metrics-aggregator")
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "jq-metrics-aggregator", "namespace": ns, "labels": labels, "annotations": RELOAD_ON_CHANGE},
        "spec": {
            "replicas": cfg.metrics_aggregator_replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": METRICS_AGGREGATOR_SA,
                    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                    "topologySpreadConstraints": _zone_spread("jq-metrics-aggregator"),
                    # SIGTERM: it commits the offsets of what it has counted.
                    "terminationGracePeriodSeconds": 30,
                    "containers": [
                        {
                            "name": "jq-metrics-aggregator",
                            "image": images.worker,
                            "command": ["jq-metrics-aggregator"],
                            "envFrom": _env_from(),
                            "ports": [{"name": "http", "containerPort": METRICS_AGGREGATOR_HTTP_PORT}],
                            "livenessProbe": {
                                "httpGet": {"path": "/healthz", "port": "http"},
                                "periodSeconds": 10,
                                "failureThreshold": 3,
                            },
                            "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 10},
                            "securityContext": _RESTRICTED_CONTAINER,
                            "resources": {
                                "requests": {"cpu": cfg.metrics_aggregator_cpu, "memory": cfg.metrics_aggregator_memory},
                                "limits": {"memory": cfg.metrics_aggregator_memory},
                            },
                            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                        }
                    ],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }
    return [deployment, _pdb(ns, "jq-metrics-aggregator", max_unavailable=1)]


def pgbouncer(ns: str, cfg: WorkloadConfig, images: Images) -> list[Manifest]:
    labels = _labels("jq-pgbouncer")
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "jq-pgbouncer", "namespace": ns, "labels": labels, "annotations": RELOAD_ON_CHANGE},
        "spec": {
            "replicas": cfg.pgbouncer_replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 70, "seccompProfile": {"type": "RuntimeDefault"}},
                    "topologySpreadConstraints": _zone_spread("jq-pgbouncer"),
                    "containers": [
                        {
                            "name": "pgbouncer",
                            "image": images.pgbouncer,
                            "envFrom": [{"secretRef": {"name": DATABASE_SECRET}}],
                            "env": [
                                # Transaction pooling: a server connection per transaction, so
                                # hundreds of worker-facing server replicas share a small RDS pool.
                                {"name": "POOL_MODE", "value": "transaction"},
                                {"name": "LISTEN_PORT", "value": str(PGBOUNCER_PORT)},
                                {"name": "AUTH_TYPE", "value": "scram-sha-256"},
                                {"name": "DEFAULT_POOL_SIZE", "value": str(cfg.pgbouncer_pool_size)},
                                {"name": "MAX_CLIENT_CONN", "value": "2000"},
                                {"name": "SERVER_TLS_SSLMODE", "value": "require"},
                                {"name": "IGNORE_STARTUP_PARAMETERS", "value": "extra_float_digits,options"},
                            ],
                            "ports": [{"name": "postgres", "containerPort": PGBOUNCER_PORT}],
                            "readinessProbe": {"tcpSocket": {"port": "postgres"}, "periodSeconds": 5},
                            "livenessProbe": {"tcpSocket": {"port": "postgres"}, "periodSeconds": 10},
                            "securityContext": {**_RESTRICTED_CONTAINER, "readOnlyRootFilesystem": False},
                            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
                        }
                    ],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "jq-pgbouncer", "namespace": ns, "labels": labels},
        "spec": {"selector": labels, "ports": [{"name": "postgres", "port": PGBOUNCER_PORT, "targetPort": "postgres"}]},
    }
    return [deployment, service, _pdb(ns, "jq-pgbouncer", max_unavailable=1)]


def _pdb(ns: str, component: str, *, max_unavailable: int | str) -> Manifest:
    # maxUnavailable rather than minAvailable: with a single replica (dev) a
    # minAvailable of 1 would block every node drain forever.
    spec: Manifest = {"selector": {"matchLabels": _labels(component)}, "maxUnavailable": max_unavailable}
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": component, "namespace": ns, "labels": _labels(component)},
        "spec": spec,
    }


def network_policies(ns: str, *, vpc_cidr: str, monitoring_namespace: str) -> list[Manifest]:
    """Ingress only along the flows the design has; everything else into the namespace is
    refused (enforced by the VPC CNI's network policy agent, infra/components/cluster.py).

    - jq-server gRPC: from the namespace's pods (workers, jq-ctl jobs) and from the VPC
      (the ALB sends to pod IPs from its own addresses in the VPC; with the VPC CNI pods
      have VPC addresses too, so this admits any pod to gRPC, where every call still needs
      a key);
    - every HTTP side port (metrics): from the monitoring namespace (Prometheus);
    - PgBouncer: from jq-server only.

    The kubelet's probes come from the node itself, which the VPC CNI's policy agent
    admits regardless of these policies.

    Egress is left open here: the stores admit only the cluster's security group, and
    AWS APIs are reached through the VPC endpoints.
    """

    def policy(name: str, selector: dict[str, Any], ingress: list[Manifest]) -> Manifest:
        return {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns, "labels": _labels(name)},
            "spec": {"podSelector": selector, "policyTypes": ["Ingress"], "ingress": ingress},
        }

    vpc = {"ipBlock": {"cidr": vpc_cidr}}
    monitoring = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": monitoring_namespace}}}
    same_namespace = {"podSelector": {}}

    def component(name: str) -> dict[str, Any]:
        return {"matchLabels": {"app.kubernetes.io/name": name}}

    def http_port(port: int) -> Manifest:
        return {"from": [monitoring], "ports": [{"protocol": "TCP", "port": port}]}

    return [
        policy("default-deny-ingress", {}, []),
        policy("jq-server", component("jq-server"), [
            {"from": [same_namespace, vpc], "ports": [{"protocol": "TCP", "port": GRPC_PORT}]},
            http_port(HTTP_PORT),
        ]),
        policy("jq-worker", component("jq-worker"), [http_port(WORKER_HTTP_PORT)]),
        policy("jq-result-processor", component("jq-result-processor"), [http_port(RESULT_PROCESSOR_HTTP_PORT)]),
        policy("jq-metrics-aggregator", component("jq-metrics-aggregator"), [http_port(METRICS_AGGREGATOR_HTTP_PORT)]),
        policy("jq-pgbouncer", component("jq-pgbouncer"), [
            {"from": [{"podSelector": component("jq-server")}], "ports": [{"protocol": "TCP", "port": PGBOUNCER_PORT}]},
        ]),
    ]
