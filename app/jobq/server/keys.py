"""API key management: the KeyService and the three AdminService RPCs that call it.

An admin of tenant T manages only T's keys; an admin of ALL_TENANTS manages every key.
Another tenant's key is NOT_FOUND, as another tenant's job is. The secret exists only in
the CreateApiKey response; the store keeps its hash.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from jobq.auth.keys import ApiKey, KeyFormatError, check_tenant, hash_secret, new_key, parse_roles
from jobq.auth.principal import ALL_TENANTS, Principal, current_principal
from jobq.core.clock import Clock
from jobq.core.errors import InvalidArgument, NotFound, PermissionDenied
from jobq.core.validation import validate_queue_name
from jobq.server import convert
from jobq.server.rpc_context import Context
from jobq.store.base import ApiKeyRepository
from jobq.v1 import admin_service_pb2 as pb


def _caller() -> Principal:
    principal = current_principal.get()
    if principal is None:  # the interceptor sets it for every call that gets here
        raise PermissionDenied("no principal")
    return principal


class KeyService:
    def __init__(self, keys: ApiKeyRepository, clock: Clock) -> None:
        self._keys = keys
        self._clock = clock

    async def create(
        self,
        tenant: str,
        roles: Sequence[str],
        queues: Sequence[str],
        description: str,
        expires_in: dt.timedelta | None,
    ) -> tuple[ApiKey, str]:
        """The stored key and the whole key (`jq_<id>_<secret>`), which is never kept."""
        caller = _caller()
        if not tenant and caller.tenant == ALL_TENANTS:
            # An all-tenant key by omission would be the widest key there is.
            raise InvalidArgument("tenant", "name the tenant ('*' for every tenant)")
        tenant = tenant or caller.tenant
        try:
            check_tenant(tenant, "tenant")
            granted = parse_roles(roles, "roles")
        except KeyFormatError as exc:
            field, _, problem = str(exc).partition(": ")
            raise InvalidArgument(field, problem) from None
        if not caller.sees(tenant):
            raise PermissionDenied(f"an admin of tenant {caller.tenant} manages only its keys")
        for queue in queues:
            validate_queue_name(queue, "queues")
        if expires_in is not None and expires_in <= dt.timedelta(0):
            raise InvalidArgument("expires_in", "must be positive (unset: never expires)")
        now = self._clock.now()
        key_id, secret, whole = new_key()
        key = ApiKey(
            id=key_id,
            secret_sha256=hash_secret(secret),
            tenant=tenant,
            roles=granted,
            queues=frozenset(queues) if queues else None,
            description=description,
            created_at=now,
            expires_at=now + expires_in if expires_in is not None else None,
        )
        return await self._keys.create(key), whole

    async def list(self, tenant: str) -> list[ApiKey]:
        caller = _caller()
        if not tenant:
            return await self._keys.all(None if caller.tenant == ALL_TENANTS else caller.tenant)
        if not caller.sees(tenant):
            raise PermissionDenied(f"an admin of tenant {caller.tenant} manages only its keys")
        return await self._keys.all(tenant)

    async def revoke(self, key_id: str) -> ApiKey:
        caller = _caller()
        key = await self._keys.get(key_id)
        if key is None or not caller.sees(key.tenant):
            raise NotFound(f"API key {key_id} not found")
        return await self._keys.revoke(key_id, self._clock.now())


def key_to_pb(key: ApiKey) -> pb.ApiKey:
    return pb.ApiKey(
        id=key.id,
        tenant=key.tenant,
        roles=sorted(r.value for r in key.roles),
        queues=sorted(key.queues or ()),
        description=key.description,
        create_time=convert.ts(key.created_at),
        expire_time=convert.ts(key.expires_at),
        revoke_time=convert.ts(key.revoked_at),
    )


class ApiKeyRpcs:
    """AdminService's key RPCs, mixed into AdminServicer: decode, call KeyService, encode."""

    def __init__(self, keys: KeyService) -> None:
        self.keys = keys

    async def CreateApiKey(
        self, request: pb.CreateApiKeyRequest, context: Context
    ) -> pb.CreateApiKeyResponse:
        expires_in = (
            convert.from_dur(request.expires_in, "expires_in")
            if request.HasField("expires_in")
            else None
        )
        key, whole = await self.keys.create(
            request.tenant,
            list(request.roles),
            list(request.queues),
            request.description,
            expires_in,
        )
        return pb.CreateApiKeyResponse(key=key_to_pb(key), secret_key=whole)

    async def ListApiKeys(
        self, request: pb.ListApiKeysRequest, context: Context
    ) -> pb.ListApiKeysResponse:
        keys = await self.keys.list(request.tenant)
        return pb.ListApiKeysResponse(keys=[key_to_pb(k) for k in keys])

    async def RevokeApiKey(self, request: pb.RevokeApiKeyRequest, context: Context) -> pb.ApiKey:
        return key_to_pb(await self.keys.revoke(request.id))
