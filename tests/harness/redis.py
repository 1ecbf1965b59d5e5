"""Redis servers the tests start themselves from Debian's redis-server: a standalone one and
a cluster (3 masters, optionally one replica each), on free loopback ports, stopped by pid.

A missing redis-server or redis-cli fails the test: scripts/install-redis.sh installs them,
and a coordination suite that passed by skipping would prove nothing.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.services import free_port, wait_for_port

PASSWORD = "jq-test-redis-password"


def binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed (scripts/install-redis.sh installs it)")
    return found


def cli(port: int, *args: str, password: str = PASSWORD) -> str:
    result = subprocess.run(
        [
            binary("redis-cli"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "--no-auth-warning",
            "-a",
            password,
            *args,
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.stdout


class RedisNode:
    """One redis-server process: its own directory, port and log; AUTH always on."""

    def __init__(self, root: Path, *, cluster: bool = False) -> None:
        self.root = root
        self.port = free_port()
        self.cluster = cluster
        self.bus_port = free_port() if cluster else 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    def start(self) -> None:
        argv = [
            binary("redis-server"),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.root),
            "--requirepass", PASSWORD,
            "--masterauth", PASSWORD,
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
        ]  # fmt: skip
        if self.cluster:
            argv += [
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(self.root / "nodes.conf"),
                # A free bus port of its own: the default, port + 10000, may be past 65535.
                "--cluster-port", str(self.bus_port),
                # Short, so that a killed master's replica takes over within the test.
                "--cluster-node-timeout", "2000",
                # A replica takes over however long ago it last heard its master: the default
                # factor refuses a replica whose link is "too old" in node-timeout units, which
                # on a loaded machine left a killed master's slots unserved for good.
                "--cluster-replica-validity-factor", "0",
            ]  # fmt: skip
        if self._log is None:  # kept open across kill() and start() again
            self._log = open(self.root / "redis.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=self._log, cwd=self.root)
        try:
            wait_for_port(self.port)
        except TimeoutError:
            raise TimeoutError(f"redis-server did not start: {self.log()}") from None

    def log(self) -> str:
        path = self.root / "redis.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(30)

    def pause(self) -> None:
        """SIGSTOP: the process hangs with its sockets open, as a stalled node does; calls
        to it time out rather than being refused."""
        assert self.proc is not None and self.proc.poll() is None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        self.resume()  # a paused process would not act on SIGTERM
        self.kill(signal.SIGTERM)
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self) -> None:
        """The same port and directory again, after kill() or stop()."""
        self.stop()
        self.start()


class RedisServer(RedisNode):
    @property
    def url(self) -> str:
        return f"redis://:{PASSWORD}@127.0.0.1:{self.port}/0"

    def flush(self) -> None:
        cli(self.port, "FLUSHALL")


class RedisClusterHarness:
    """3 masters (and `replicas` replicas per master) joined by `redis-cli --cluster create`."""

    def __init__(self, root: Path, replicas: int = 0) -> None:
        self.root = root
        self.replicas = replicas
        self.nodes: list[RedisNode] = []

    @property
    def url(self) -> str:
        # The scheme says cluster: the adapter builds a RedisCluster from any one node.
        return f"redis+cluster://:{PASSWORD}@127.0.0.1:{self.nodes[0].port}/0"

    def start(self) -> None:
        for index in range(3 * (1 + self.replicas)):
            node_root = self.root / f"node{index}"
            node_root.mkdir()
            node = RedisNode(node_root, cluster=True)
            node.start()
            self.nodes.append(node)
        addresses = [f"127.0.0.1:{n.port}" for n in self.nodes]
        cli(
            self.nodes[0].port,
            "--cluster", "create", *addresses,
            "--cluster-replicas", str(self.replicas),
            "--cluster-yes",
        )  # fmt: skip
        self.wait_ok()
        if self.replicas:
            self.wait_replicas_in_sync()

    def wait_ok(self, timeout: float = 60.0) -> None:
        """Until every live node says cluster_state:ok (slots covered, failover finished)."""
        deadline = time.monotonic() + timeout
        while True:
            states = []
            for node in self.nodes:
                if node.proc is None or node.proc.poll() is not None:
                    continue
                try:
                    states.append("cluster_state:ok" in cli(node.port, "CLUSTER", "INFO"))
                except subprocess.CalledProcessError:
                    states.append(False)
            if states and all(states):
                return
            if time.monotonic() > deadline:
                raise TimeoutError("redis cluster did not reach cluster_state:ok")
            time.sleep(0.2)

    def live(self) -> list[RedisNode]:
        return [n for n in self.nodes if n.proc is not None and n.proc.poll() is None]

    def wait_replicas_in_sync(self, timeout: float = 60.0) -> None:
        """Until every replica's link to its master is up: only then can it take over."""
        deadline = time.monotonic() + timeout
        while True:
            # Read again each round: right after --cluster create, gossip may not yet have
            # told the node asked which of the others became replicas.
            masters = set(self.masters())
            replicas = [n for n in self.live() if n not in masters]
            if len(replicas) == 3 * self.replicas and all(
                "master_link_status:up" in cli(n.port, "INFO", "replication") for n in replicas
            ):
                return
            if time.monotonic() > deadline:
                raise TimeoutError("redis cluster replicas did not sync with their masters")
            time.sleep(0.2)

    def kill_master(self) -> RedisNode:
        """SIGKILL one master; failed_over() then says when its replica has taken over."""
        victim = self.masters()[0]
        victim.kill(signal.SIGKILL)
        return victim

    def failed_over(self, victim: RedisNode) -> bool:
        """Every live node sees the victim `fail` and a live master for each of the 16384 slots.

        cluster_state stays ok until the survivors mark the dead master failed (node timeout),
        so "ok" right after a kill proves nothing.
        """
        try:
            return self._failed_over(victim)
        except subprocess.CalledProcessError:
            return False  # a node busy with the election answers on a later round

    def _failed_over(self, victim: RedisNode) -> bool:
        for node in self.live():
            lines = cli(node.port, "CLUSTER", "NODES").splitlines()
            rows = [line.split() for line in lines if line.strip()]
            dead = [r for r in rows if f":{victim.port}@" in r[1]]
            if not dead or "fail" not in dead[0][2].split(","):
                return False
            served = 0
            for row in rows:
                flags = row[2].split(",")
                if "master" in flags and "fail" not in flags and row is not dead[0]:
                    for part in row[8:]:
                        if part.startswith("["):
                            continue  # a slot in migration
                        first, _, last = part.partition("-")
                        served += int(last or first) - int(first) + 1
            if served != 16384:
                return False
        return True

    def masters(self) -> list[RedisNode]:
        by_port = {n.port: n for n in self.nodes}
        live = next(n for n in self.nodes if n.proc is not None and n.proc.poll() is None)
        out = []
        for line in cli(live.port, "CLUSTER", "NODES").splitlines():
            fields = line.split()
            if "master" in fields[2] and "fail" not in fields[2]:
                port = int(fields[1].split("@")[0].rsplit(":", 1)[1])
                out.append(by_port[port])
        return out

    def flush(self) -> None:
        for node in self.masters():
            cli(node.port, "FLUSHALL")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    root = Path(tempfile.mkdtemp(prefix="jq-redis-"))
    server = RedisServer(root)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def redis_cluster(replicas: int = 0) -> Iterator[RedisClusterHarness]:
    root = Path(tempfile.mkdtemp(prefix="jq-redis-cluster-"))
    cluster = RedisClusterHarness(root, replicas=replicas)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
