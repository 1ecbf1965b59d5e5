"""server.caller: the scoping rules, as plain tables of cases."""

from __future__ import annotations

import pytest

from jobq.auth.principal import ALL_TENANTS, Principal, Role, current_principal
from jobq.core.errors import InvalidArgument, PermissionDenied, Unauthenticated
from jobq.core.model import WorkerInfo, WorkerState
from jobq.server.caller import (
    caller,
    filter_scope,
    may_act_as,
    named_tenant,
    scope,
    serves_all,
    worker_scope,
)
from tests.conftest import T0

ACME = Principal(subject="key-a", tenant="acme", roles=frozenset({Role.SUBMITTER}))
PLATFORM = Principal(subject="ops", tenant=ALL_TENANTS, roles=frozenset(Role))


def test_without_a_principal_a_call_is_refused_never_served_as_anyone() -> None:
    assert current_principal.get() is None
    with pytest.raises(Unauthenticated):
        caller()
    token = current_principal.set(ACME)
    try:
        assert caller() is ACME
    finally:
        current_principal.reset(token)


@pytest.mark.parametrize(
    ("principal", "requested", "expected"),
    [
        (ACME, "", "acme"),
        (ACME, "acme", "acme"),
        (PLATFORM, "", "default"),
        (PLATFORM, "globex", "globex"),
    ],
)
def test_the_tenant_a_request_acts_in(principal, requested, expected) -> None:
    assert named_tenant(principal, requested, "job.tenant") == expected


def test_naming_another_tenant_is_permission_denied_naming_the_field() -> None:
    with pytest.raises(PermissionDenied, match=r"^job\.tenant: "):
        named_tenant(ACME, "globex", "job.tenant")
    with pytest.raises(InvalidArgument) as raised:
        named_tenant(PLATFORM, "Not A Tenant", "tenant")
    assert raised.value.field == "tenant"


def test_scopes() -> None:
    assert (scope(ACME), scope(PLATFORM)) == ("acme", None)
    assert (filter_scope(ACME, "", "tenant"), filter_scope(PLATFORM, "", "tenant")) == (
        "acme",
        None,
    )
    assert filter_scope(PLATFORM, "globex", "tenant") == "globex"
    with pytest.raises(PermissionDenied):
        filter_scope(ACME, "globex", "tenant")


def worker(tenant: str, subject: str) -> WorkerInfo:
    state = WorkerState.ACTIVE
    return WorkerInfo("w", "h", ("q",), 1, state, T0, T0, tenant=tenant, subject=subject)


@pytest.mark.parametrize(
    ("principal", "registered", "allowed"),
    [
        (ACME, worker("acme", "key-a"), True),
        (ACME, worker("acme", "key-b"), False),  # same tenant, another principal
        (ACME, worker("globex", "key-a"), False),
        (ACME, None, False),
        (PLATFORM, worker(ALL_TENANTS, "ops"), True),
    ],
)
def test_a_worker_id_acts_only_for_its_registering_principal(principal, registered, allowed):
    assert may_act_as(principal, registered) is allowed


def test_a_worker_leases_in_its_tenant_or_every_tenant() -> None:
    assert worker_scope(worker("acme", "k")) == "acme"
    assert worker_scope(worker(ALL_TENANTS, "k")) is None


def test_a_credential_limited_to_queues_serves_only_those() -> None:
    limited = Principal("k", "acme", frozenset({Role.WORKER}), queues=frozenset({"emails"}))
    serves_all(limited, ["emails"], "queues")
    with pytest.raises(PermissionDenied, match="reports"):
        serves_all(limited, ["emails", "reports"], "queues")
