"""A real single-node Apache Kafka broker (KRaft, combined broker + controller) for tests.

The jars come from Maven Central through `scripts/install-kafka.sh` (tests/harness/kafka-pom.xml)
into `.cache/kafka-libs/`; this module formats a temp log dir, starts
`java -cp '.cache/kafka-libs/*' kafka.Kafka server.properties` on free loopback ports, waits
until an AdminClient can list topics, and stops it by pid. No mock broker anywhere.

A missing Java or missing jars skip locally and fail in CI (CI=true), like every service here.
Registered for every suite by `pytest_plugins` in tests/conftest.py.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from tests.harness.services import delete_later, free_port, missing, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
KAFKA_LIBS = Path(os.environ.get("JQ_TEST_KAFKA_LIBS", ROOT / ".cache" / "kafka-libs"))

_SERVER_PROPERTIES = """\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={log_dir}
# Topics exist only when jobq creates them: a missing topic is a bug, not a default.
auto.create.topics.enable=false
num.partitions=1
# One node: every internal topic with one replica and few partitions, so it starts fast.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
"""

_LOG4J2 = """\
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
"""


class KafkaBroker:
    """One broker process on 127.0.0.1; `stop()` then `start()` again keeps ports and data."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.controller_port = free_port()
        self.log_dir = root / "data"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._formatted = False

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _java(self, main: str, *args: str, heap: str = "256m") -> list[str]:
        return [
            "java",
            f"-Xmx{heap}",
            "-XX:+UseSerialGC",
            # C1 only: the C2 compiler's work at start is CPU the 2 cores of CI share with
            # the tests, and a test broker never runs long enough to repay it (a start took
            # 72-86 s with it and 20-28 s without on the loaded machine, format included).
            "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.root / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.root}",
            "-cp",
            f"{KAFKA_LIBS}/*",
            main,
            *args,
        ]

    def start(self, timeout: float = 60.0) -> None:
        if shutil.which("java") is None:
            missing("Java (for the Kafka broker)")
        if not any(KAFKA_LIBS.glob("kafka_2.13-*.jar")):
            missing(f"Kafka jars in {KAFKA_LIBS} (run scripts/install-kafka.sh)")
        if not self._formatted:
            self._write_config()
            subprocess.run(
                self._java(
                    "kafka.tools.StorageTool",
                    "format",
                    "--cluster-id",
                    _cluster_id(),
                    "--config",
                    str(self.root / "server.properties"),
                    heap="128m",
                ),
                check=True,
                capture_output=True,
                timeout=120,
            )
            self._formatted = True
        if self._log is None:
            self._log = open(self.root / "stdout.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self._java("kafka.Kafka", str(self.root / "server.properties"), heap="512m"),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_port(self.port, timeout)
            self._wait_ready(timeout)
        except Exception:
            self.stop()
            raise

    def _write_config(self) -> None:
        (self.root / "server.properties").write_text(
            _SERVER_PROPERTIES.format(
                port=self.port, controller_port=self.controller_port, log_dir=self.log_dir
            )
        )
        (self.root / "log4j2.properties").write_text(_LOG4J2.format(log=self.root / "broker.log"))

    def _wait_ready(self, timeout: float) -> None:
        """Ready when the broker answers a metadata request (it then serves produce too)."""
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers})
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"Kafka exited with {self.proc.returncode}; see {self.root}")
            try:
                metadata = admin.list_topics(timeout=2)
                if metadata.brokers:
                    return
            except Exception:
                if time.monotonic() > deadline:
                    raise
            if time.monotonic() > deadline:
                raise TimeoutError(f"Kafka not ready after {timeout}s; see {self.root}")
            time.sleep(0.2)

    def kill(self) -> None:
        """Stop the broker abruptly (SIGKILL), as a crashed host would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # controlled shutdown
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self._log is not None:
            self._log.close()
            self._log = None


def _cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (22 characters)."""
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


@contextlib.contextmanager
def kafka_broker_running() -> Iterator[KafkaBroker]:
    root = Path(tempfile.mkdtemp(prefix="jq-kafka-"))
    broker = KafkaBroker(root)
    try:
        broker.start()
        yield broker
    finally:
        # Its data is deleted next: no controlled shutdown to wait for (took 2-7 s).
        broker.kill()
        broker.stop()  # closes the log
        delete_later(root)


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaBroker]:
    """One broker for the whole run; tests isolate themselves by topic prefix."""
    with kafka_broker_running() as broker:
        yield broker
