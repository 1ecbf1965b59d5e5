"""Deny by default and the first key, with real jq-server, jq-worker and jq-ctl processes.

The README's "Authentication" steps are run here as written: a bootstrap key made offline,
a server started with only its hash, keys created, used, listed and revoked with jq-ctl.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import BIN, Cluster, wait_until


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Cluster]:
    made = Cluster(tmp_path)  # SQLite: start-up and key handling do not depend on the store
    made.env.pop("JQ_AUTH_BOOTSTRAP_KEYS")
    try:
        yield made
    finally:
        made.stop()


def run(
    args: list[str], env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)


def test_a_misspelt_setting_stops_every_process_naming_it(local: Cluster) -> None:
    env = local.env | {"JQ_AUTH_TOKENS": "secret-token"}
    for binary in ("jq-server", "jq-worker", "jq-ctl"):
        args = [str(BIN / binary)] + (["list"] if binary == "jq-ctl" else [])
        result = run(args, env, timeout=30)
        assert result.returncode == 2, (binary, result.stderr)
        assert "JQ_AUTH_TOKENS: unknown setting" in result.stderr, binary
        assert "secret-token" not in result.stderr + result.stdout


def test_a_server_with_no_credentials_refuses_to_start_in_one_line(local: Cluster) -> None:
    result = run([str(BIN / "jq-server")], local.env, timeout=30)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("jq-server: no credentials configured: set JQ_AUTH_BOOTSTRAP_KEYS")
    assert "JQ_AUTH_UNAUTHENTICATED=true" in lines[-1]


def test_unauthenticated_development_mode_says_so_once_and_serves_everyone(
    local: Cluster,
) -> None:
    server = local.start_server(JQ_AUTH_UNAUTHENTICATED="true")
    submitted = run([str(BIN / "jq-ctl"), "--server", local.address, "submit", "echo", "{}",
                     "--json"], local.env)  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    warnings = [line for line in server.output().splitlines() if "JQ_AUTH_UNAUTHENTICATED" in line]
    assert len(warnings) == 1 and "local development only" in warnings[0]


def test_the_first_key_from_bootstrap_to_revocation(local: Cluster) -> None:
    ctl = [str(BIN / "jq-ctl"), "--server", local.address]
    # Given a key made offline, and only its hash in the server's setting
    made = run([*ctl, "keys", "bootstrap", "--role", "admin", "--role", "operator"], local.env)
    assert made.returncode == 0, made.stderr
    admin_key = made.stdout.strip()
    entry = json.loads(made.stderr.strip())
    assert admin_key.startswith(f"jq_{entry['id']}_") and admin_key not in made.stderr
    local.start_server(JQ_AUTH_BOOTSTRAP_KEYS=json.dumps([entry]))
    admin = local.env | {"JQ_TOKEN": admin_key}
    # When the admin creates a submitter key for tenant acme, it is printed once
    created = run([*ctl, "keys", "create", "--tenant", "acme", "--role", "submitter",
                   "--expires", "90d"], admin)  # fmt: skip
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    key_id = key.split("_")[1]
    worker_key = run([*ctl, "keys", "create", "--tenant", "acme", "--role", "worker",
                      "--queue", "emails"], admin)  # fmt: skip
    assert worker_key.returncode == 0, worker_key.stderr
    # Then the key works, the list shows it without material, and a revoke ends it
    holder = local.env | {"JQ_TOKEN": key}
    assert run([*ctl, "submit", "echo", "{}"], holder).returncode == 0
    listed = run([*ctl, "keys", "list", "--json"], admin)
    assert listed.returncode == 0, listed.stderr
    assert key.split("_", 2)[2] not in listed.stdout
    rows = json.loads(listed.stdout)
    assert [(r["tenant"], r["roles"], r["queues"]) for r in rows] == [
        ("acme", ["submitter"], []),
        ("acme", ["worker"], ["emails"]),
    ]
    assert rows[0]["id"] == key_id and "secret" not in json.dumps(rows)
    denied = run([*ctl, "queues", "list"], holder)
    assert denied.returncode == 6 and "PermissionDenied" in denied.stderr
    assert run([*ctl, "keys", "revoke", key_id, "--yes"], admin).returncode == 0
    refused = run([*ctl, "submit", "echo", "{}"], holder)
    assert refused.returncode == 6 and "Unauthenticated" in refused.stderr
    anonymous = run([*ctl, "list"], local.env)
    assert anonymous.returncode == 6 and "no credential" in anonymous.stderr


def test_a_worker_with_the_wrong_key_does_not_register(local: Cluster) -> None:
    server = local.start_server(
        JQ_AUTH_BOOTSTRAP_KEYS=json.dumps([{"key": SUBMITTER, "roles": ["submitter"]}])
    )
    worker = subprocess.Popen(
        [str(BIN / "jq-worker"), "--tasks", "jobq.examples"],
        env=local.env | {"JQ_TOKEN": SUBMITTER, "JQ_WORKER_HTTP_PORT": "0"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        out, _ = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 1
    assert "jq-worker: refused by the server: PermissionDenied" in out
    assert "worker role" in out and SUBMITTER not in out
    wait_until(lambda: "denied" in server.output(), what="the refusal in the audit log")


SUBMITTER = "jq_00000000000000aa_" + "s" * 43
