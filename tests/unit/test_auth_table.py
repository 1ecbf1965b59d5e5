"""The role table names every RPC the protos define; the settings know every JQ_ variable
the processes are given; bootstrap keys parse strictly and never echo a secret."""

from __future__ import annotations

import json

import pytest

from jobq.auth import permissions
from jobq.auth.keys import KeyFormatError, bootstrap_entry, hash_secret, new_key, parse_bootstrap
from jobq.auth.principal import Role
from jobq.auth.tokens import parse_algorithms
from jobq.config import known_variables, unknown_variables
from jobq.v1 import (
    admin_service_pb2,
    job_service_pb2,
    schedule_service_pb2,
    worker_service_pb2,
    workflow_service_pb2,
)


def proto_methods() -> set[str]:
    names = set()
    for module in (
        job_service_pb2,
        worker_service_pb2,
        admin_service_pb2,
        schedule_service_pb2,
        workflow_service_pb2,
    ):
        for service in module.DESCRIPTOR.services_by_name.values():
            names |= {f"/{service.full_name}/{m.name}" for m in service.methods}
    return names


def test_every_rpc_in_the_protos_is_in_the_role_table() -> None:
    missing = proto_methods() - set(permissions.REQUIRED)
    assert missing == set(), f"RPCs no role may call until the table lists them: {missing}"


def test_the_table_names_no_rpc_the_protos_do_not_have() -> None:
    jobq_rows = {m for m in permissions.REQUIRED if m.startswith("/jobq.")}
    assert jobq_rows - proto_methods() == set()


def test_roles_follow_the_services() -> None:
    for method, need in permissions.REQUIRED.items():
        if "/jobq.v1.JobService/" in method:
            assert need is Role.SUBMITTER, method
        elif "/jobq.v1.WorkerService/" in method:
            assert need is Role.WORKER, method
        elif method.endswith("ApiKey") or method.endswith("ApiKeys"):
            assert need is Role.ADMIN, method
        elif "/jobq.v1.AdminService/" in method:
            assert need is Role.OPERATOR, method
        elif "/jobq.v1.ScheduleService/" in method:
            assert need == frozenset({Role.OPERATOR, Role.ADMIN}), method


def test_only_health_is_open() -> None:
    assert permissions.is_open("/grpc.health.v1.Health/Check")
    assert permissions.is_open("/grpc.health.v1.Health/Watch")
    assert not permissions.is_open("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
    assert not any(permissions.is_open(m) for m in proto_methods())


def test_a_misspelt_security_setting_is_unknown_and_named() -> None:
    env = {"JQ_AUTH_TOKENS": "x", "JQ_DATABASE_URL": "sqlite:///x", "PATH": "/bin"}
    assert unknown_variables(env) == ["JQ_AUTH_TOKENS"]


def test_every_settings_class_contributes_its_variables() -> None:
    known = known_variables()
    for name in ("JQ_AUTH_BOOTSTRAP_KEYS", "JQ_TOKEN", "JQ_TLS_CA_FILE", "JQ_WORKER_HTTP_PORT",
                 "JQ_RESULT_PROCESSOR_GROUP", "JQ_KAFKA_BOOTSTRAP_SERVERS", "JQ_ENV"):  # fmt: skip
        assert name in known


def test_bootstrap_keys_take_the_key_or_its_hash() -> None:
    _, secret, key = new_key()
    key_id = key.split("_")[1]
    by_key = parse_bootstrap(json.dumps([{"key": key, "tenant": "acme", "roles": ["worker"],
                                          "queues": ["emails"]}]))  # fmt: skip
    by_hash = parse_bootstrap("[" + bootstrap_entry(key, "acme", [Role.WORKER], ["emails"]) + "]")
    assert by_key == by_hash
    parsed = by_key[key_id]
    assert parsed.secret_sha256 == hash_secret(secret) and parsed.matches(secret)
    assert parsed.queues == frozenset({"emails"}) and parsed.roles == frozenset({Role.WORKER})
    assert secret not in bootstrap_entry(key, "acme", [Role.WORKER], [])


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "{}",
        '[{"roles": ["admin"]}]',
        '[{"key": "jq_short", "roles": ["admin"]}]',
        '[{"id": "0123456789abcdef", "sha256": "00", "roles": ["admin"]}]',
        '[{"id": "0123456789abcdef", "sha256": "' + "0" * 64 + '", "roles": ["root"]}]',
        '[{"id": "0123456789abcdef", "sha256": "' + "0" * 64 + '", "roles": []}]',
        '[{"id": "0123456789abcdef", "sha256": "' + "0" * 64 + '", "roles": ["admin"], "x": 1}]',
    ],
)
def test_a_bad_bootstrap_entry_is_refused_naming_the_setting(text: str) -> None:
    with pytest.raises(KeyFormatError, match="JQ_AUTH_BOOTSTRAP_KEYS"):
        parse_bootstrap(text)


def test_a_bad_bootstrap_key_is_not_echoed() -> None:
    secretish = "jq_0123456789abcdef_" + "s" * 10  # too short to be a key
    with pytest.raises(KeyFormatError) as refused:
        parse_bootstrap(json.dumps([{"key": secretish, "roles": ["admin"]}]))
    assert "s" * 10 not in str(refused.value)


@pytest.mark.parametrize("algorithms", ["HS256", "none", "RS256,HS512", ""])
def test_symmetric_and_none_algorithms_are_refused(algorithms: str) -> None:
    with pytest.raises(KeyFormatError, match="JQ_AUTH_JWT_ALGORITHMS"):
        parse_algorithms(algorithms)


def test_a_viewer_reads_and_changes_nothing() -> None:
    from jobq.auth.principal import Principal
    from jobq.core.errors import PermissionDenied
    from jobq.server.authn import authorize

    viewer = Principal(subject="key:v", tenant="*", roles=frozenset({Role.VIEWER}))
    for method in permissions.REQUIRED:
        if method in permissions.READ_ONLY:
            authorize(method, viewer, None)
        elif method.startswith("/jobq."):
            try:
                authorize(method, viewer, None)
            except PermissionDenied:
                continue
            raise AssertionError(f"a viewer may call {method}")
    assert set(permissions.REQUIRED) >= permissions.READ_ONLY
