"""An unmodified external client (grpcurl) finds and calls every method through reflection."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.auth_keys import EVERY_ROLE_KEY, SUBMITTER_KEY

from .conftest import Cluster

pytestmark = pytest.mark.e2e

SERVICES = ("jobq.v1.JobService", "jobq.v1.WorkerService", "jobq.v1.AdminService")


@pytest.fixture
def grpcurl() -> str:
    path = shutil.which("grpcurl")
    if path is None:
        pytest.fail("grpcurl is not installed (scripts/install-grpcurl.sh; make test does it)")
    return path


# Reflection and every method with one key of every role: this test is about the API's
# shape; tests/integration/test_auth_matrix.py is about who may call what.
AUTH = ["-H", f"authorization: Bearer {EVERY_ROLE_KEY}"]


def call(
    grpcurl: str, cluster: Cluster, *args: str, auth: list[str] = AUTH
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [grpcurl, "-plaintext", *auth, cluster.address, *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_grpcurl_lists_and_calls_every_method(cluster: Cluster, grpcurl: str) -> None:
    cluster.start_server()
    listed = call(grpcurl, cluster, "list")
    assert listed.returncode == 0, listed.stderr
    assert {*SERVICES, "grpc.health.v1.Health"} <= set(listed.stdout.split())
    # (grpcurl reads Health's schema through reflection, which needs the key; the Check
    # itself needs none: tests/integration/test_auth.py)
    health = call(grpcurl, cluster, "grpc.health.v1.Health/Check")
    assert json.loads(health.stdout) == {"status": "SERVING"}
    anonymous = call(grpcurl, cluster, "list", auth=[])
    assert anonymous.returncode != 0 and "Unauthenticated" in anonymous.stderr
    for service in SERVICES:
        described = call(grpcurl, cluster, "list", service)
        assert described.returncode == 0, described.stderr
        methods = described.stdout.split()
        assert methods, f"{service} lists no methods"
        for method in methods:
            result = subprocess.run(
                [
                    grpcurl,
                    "-plaintext",
                    *AUTH,
                    "-max-time",
                    "10",
                    "-d",
                    "{}",
                    cluster.address,
                    method,
                ],
                capture_output=True,
                text=True,
                timeout=30,
            )
            if result.returncode == 0:
                json.loads(result.stdout or "{}")
                continue
            # Empty requests are mostly bad input: the answer must be a deliberate status,
            # never "no such method" or a server crash.
            assert "Code: Unimplemented" not in result.stderr, method
            assert "Code: Internal" not in result.stderr, (method, result.stderr)
            assert "Code: Unknown" not in result.stderr, (method, result.stderr)
            assert "Code:" in result.stderr, (method, result.stderr)


def test_grpcurl_submits_a_job(cluster: Cluster, grpcurl: str) -> None:
    cluster.start_server()
    body = json.dumps({"job": {"type": "echo", "payload": '{"msg": "hi"}', "priority": 3}})
    result = subprocess.run(
        [
            grpcurl,
            "-plaintext",
            "-H",
            f"authorization: Bearer {SUBMITTER_KEY}",
            "-d",
            body,
            cluster.address,
            "jobq.v1.JobService/Submit",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    response = json.loads(result.stdout)
    assert response["created"] is True
    assert response["job"]["state"] == "JOB_STATE_QUEUED"
    assert response["job"]["priority"] == 3
