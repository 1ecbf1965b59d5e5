"""The compose file's Kafka consumers, run as it shows them: each service's entrypoint with
its environment (the broker address pointed at the test's broker), then its healthcheck
command, which must pass against the running process; the processes must also answer the
readiness the Kubernetes manifests probe."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import BIN, Proc, wait_until
from tests.harness.kafka import KafkaBroker
from tests.http import is_ready

pytestmark = pytest.mark.e2e

COMPOSE = Path(__file__).resolve().parents[2] / "docker" / "compose.yaml"


def ready(port: int) -> bool:
    return is_ready(port)


@pytest.mark.parametrize("service", ["jq-result-processor", "jq-metrics-aggregator"])
def test_the_compose_consumer_starts_as_shown_and_its_healthcheck_passes(
    service: str, kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    spec = yaml.safe_load(COMPOSE.read_text())["services"][service]
    env = {str(k): str(v) for k, v in spec["environment"].items()}
    port = int(next(v for k, v in env.items() if k.endswith("_HTTP_PORT")))
    env["JQ_KAFKA_BOOTSTRAP_SERVERS"] = kafka_broker.bootstrap_servers  # was kafka:9092
    prefix = f"t{uuid.uuid4().hex[:8]}."
    # Topics of its own, as jq-server would create them (JQ_KAFKA_CREATE_TOPICS).
    created = subprocess.run(
        [str(BIN / "jq-ctl"), "events", "create-topics"],
        env=os.environ | env | {"JQ_KAFKA_TOPIC_PREFIX": prefix, "JQ_KAFKA_TOPIC_PARTITIONS": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert created.returncode == 0, created.stderr
    group = {f"JQ_{k}_GROUP": f"g-{prefix}" for k in ("RESULT_PROCESSOR", "METRICS_AGGREGATOR")}
    entrypoint = [str(BIN / spec["entrypoint"][0]), *spec["entrypoint"][1:], *spec["command"]]
    proc = Proc(
        entrypoint,
        os.environ | env | group | {"JQ_KAFKA_TOPIC_PREFIX": prefix},
        tmp_path / f"{service}.log",
    )
    try:
        wait_until(lambda: ready(port), timeout=60, interval=0.5, what=f"{service} /readyz")
        kind, *command = spec["healthcheck"]["test"]
        assert kind == "CMD" and command[0] == "python"
        check = subprocess.run([sys.executable, *command[1:]], capture_output=True, timeout=10)
        assert check.returncode == 0, check.stderr
    finally:
        proc.stop()
    assert proc.popen.returncode == 0, proc.output()
