"""API keys through the AdminService: created once, used, revoked on every replica at the
next call; admins manage only their tenant's keys; worker keys serve only their queues;
refusals and admin actions are audit lines, and no key material reaches a log or a span."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from jobq.client import AsyncClient
from jobq.config import ServerSettings
from jobq.core.errors import InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from jobq.server.app import ServerApp
from jobq.worker.connection import WorkerConnection
from tests.auth_keys import ADMIN_KEY, BOOTSTRAP_KEYS, OPERATOR_KEY, OWNER_KEY
from tests.integration.inprocess import Spans, running_server


@contextlib.asynccontextmanager
async def replica(url: str) -> AsyncIterator[ServerApp]:
    app = ServerApp(
        ServerSettings(
            grpc_port=0,
            http_port=0,
            database_url=url,
            database_pool_min=1,
            database_pool_max=4,
            shutdown_grace=dt.timedelta(seconds=1),
            auth_bootstrap_keys=BOOTSTRAP_KEYS,
        )
    )
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


def address(app: ServerApp) -> str:
    return f"127.0.0.1:{app.grpc_port}"


async def test_a_revoked_key_is_refused_at_the_next_call_on_every_replica(
    pg_databases: Any,
) -> None:
    url = pg_databases.create()
    async with replica(url) as a, replica(url) as b:
        async with AsyncClient(address(a), token=ADMIN_KEY) as admin:
            key, secret = await admin.create_api_key(["submitter"], tenant="*", description="ci")
        assert secret.startswith(f"jq_{key.id}_")
        async with (
            AsyncClient(address(a), token=secret) as on_a,
            AsyncClient(address(b), token=secret) as on_b,
        ):
            job = await on_a.submit("echo", {})
            assert (await on_b.get(job.id)).id == job.id  # the key works on both
            async with AsyncClient(address(b), token=ADMIN_KEY) as admin:
                revoked = await admin.revoke_api_key(key.id)
            assert revoked.revoked_at is not None
            for client in (on_a, on_b):
                with pytest.raises(Unauthenticated, match="revoked"):
                    await client.get(job.id)


async def test_keys_list_shows_no_material_and_expiry_holds(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path) as app,
        AsyncClient(address(app), token=ADMIN_KEY) as admin,
    ):
        key, secret = await admin.create_api_key(
            ["worker"], tenant="acme", queues=["emails"], expires_in=dt.timedelta(days=90)
        )
        listed = [k for k in await admin.list_api_keys() if k.id == key.id]
        assert listed == [key]
        assert key.expires_at is not None and key.created_at is not None
        assert key.expires_at - key.created_at == dt.timedelta(days=90)
        assert key.queues == ["emails"] and key.roles == ["worker"]
        raw = await app.store.api_keys.get(key.id)
        assert raw is not None and secret.split("_", 2)[2] not in repr(raw)


async def test_an_admin_of_one_tenant_manages_only_its_keys(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path) as app,
        AsyncClient(address(app), token=ADMIN_KEY) as root,
    ):
        _, acme_admin = await root.create_api_key(["admin"], tenant="acme")
        other, _ = await root.create_api_key(["submitter"], tenant="other")
        async with AsyncClient(address(app), token=acme_admin) as admin:
            with pytest.raises(PermissionDenied):
                await admin.create_api_key(["submitter"], tenant="other")
            with pytest.raises(PermissionDenied):
                await admin.create_api_key(["admin"], tenant="*")
            mine, _ = await admin.create_api_key(["submitter"])  # its own tenant by default
            assert mine.tenant == "acme"
            assert {k.tenant for k in await admin.list_api_keys()} == {"acme"}
            with pytest.raises(NotFound):  # another tenant's key is not there at all
                await admin.revoke_api_key(other.id)
        assert (await app.store.api_keys.get(other.id)).revoked_at is None  # type: ignore[union-attr]


async def test_an_operator_cannot_manage_keys(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path) as app,
        AsyncClient(address(app), token=OPERATOR_KEY) as operator,
    ):
        with pytest.raises(PermissionDenied, match="admin role"):
            await operator.create_api_key(["admin"], tenant="*")
        assert await app.store.api_keys.all() == []


async def test_a_key_names_its_tenant_and_valid_roles(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path) as app,
        AsyncClient(address(app), token=ADMIN_KEY) as admin,
    ):
        with pytest.raises(InvalidArgument, match="tenant"):
            await admin.create_api_key(["submitter"])  # all tenants by omission: no
        with pytest.raises(InvalidArgument, match="roles"):
            await admin.create_api_key(["root"], tenant="acme")
        with pytest.raises(InvalidArgument, match="roles"):
            await admin.create_api_key([], tenant="acme")
        with pytest.raises(InvalidArgument, match="queues"):
            await admin.create_api_key(["worker"], tenant="acme", queues=["bad name!"])
        with pytest.raises(InvalidArgument, match="expires_in"):
            await admin.create_api_key(["worker"], tenant="acme", expires_in=dt.timedelta(0))
        assert await app.store.api_keys.all() == []


async def test_a_worker_key_serves_only_its_queues(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path) as app,
        AsyncClient(address(app), token=ADMIN_KEY) as admin,
    ):
        _, secret = await admin.create_api_key(["worker"], tenant="acme", queues=["emails"])
        worker = WorkerConnection(address(app), token=secret)
        try:
            with pytest.raises(PermissionDenied, match="'billing'"):
                await worker.register("", ["emails", "billing"], 1, [])
            assert await app.store.workers.all(app.service.clock.now(), dt.timedelta(1)) == []
            await worker.register("", ["emails"], 1, [])
            with pytest.raises(PermissionDenied, match="'billing'"):
                await worker.lease(["billing"], 1, dt.timedelta(0), [])
            with pytest.raises(PermissionDenied, match="emails"):
                await worker.lease([], 1, dt.timedelta(0), [])  # "my registered queues"
            assert await worker.lease(["emails"], 1, dt.timedelta(0), []) == []
        finally:
            await worker.close()


async def test_refusals_and_admin_actions_are_audited_and_no_secret_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spans = Spans("jq-server")
    caplog.set_level(logging.DEBUG)
    async with (
        running_server(tmp_path, tracing=spans) as app,
        AsyncClient(address(app), token=ADMIN_KEY) as admin,
        AsyncClient(address(app), token=OWNER_KEY) as owner,
    ):
        key, secret = await admin.create_api_key(["submitter"], tenant="acme")
        async with AsyncClient(address(app), token=secret) as holder:
            await holder.submit("echo", {})
            with pytest.raises(PermissionDenied):
                await holder.purge_queue("default")
        await owner.purge_queue("default", tenant="acme")  # the holder submitted in acme
        await admin.revoke_api_key(key.id)
        async with AsyncClient(address(app), token=secret) as holder:
            with pytest.raises(Unauthenticated):
                await holder.submit("echo", {})
        async with AsyncClient(address(app), token=secret[:-3] + "abc") as guesser:
            with pytest.raises(Unauthenticated):
                await guesser.submit("echo", {})
    audits = [r.__dict__ for r in caplog.records if r.name == "jobq.audit"]
    seen = [(a["rpc"].rsplit("/", 1)[1], a["outcome"], a["subject"]) for a in audits]
    assert ("CreateApiKey", "ok", "key:0000000000000004") in seen
    assert ("PurgeQueue", "denied", f"key:{key.id}") in seen
    assert ("PurgeQueue", "ok", "key:0000000000000005") in seen
    assert ("RevokeApiKey", "ok", "key:0000000000000004") in seen
    assert sum(1 for s in seen if s[:2] == ("Submit", "denied")) == 2
    denied = next(a for a in audits if a["rpc"].endswith("PurgeQueue") and a["outcome"] == "denied")
    assert denied["tenant"] == "acme" and denied["code"] == "PERMISSION_DENIED"
    # Not the key, not its secret half, in any log record or any span attribute.
    material = secret.split("_", 2)[2]
    logged = "\n".join(json.dumps(r.__dict__, default=str) for r in caplog.records)
    traced = "\n".join(json.dumps(dict(s.attributes or {}), default=str) for s in spans.finished())
    for text in (logged, traced):
        assert material not in text and secret[:-3] not in text


async def test_a_server_with_no_credentials_refuses_to_start(tmp_path: Path) -> None:
    app = ServerApp(
        ServerSettings(grpc_port=0, http_port=0, database_url=f"sqlite:///{tmp_path}/jobq.db")
    )
    with pytest.raises(Exception, match="JQ_AUTH_BOOTSTRAP_KEYS") as refused:
        await app.start()
    assert "JQ_AUTH_UNAUTHENTICATED=true" in str(refused.value)
    with contextlib.suppress(grpc.RpcError):
        await app.stop()
