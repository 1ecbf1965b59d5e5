"""From what a call carries to the principal it runs as; raises Unauthenticated or
PermissionDenied, never with key material in the message.

One scheme for bearer credentials: `authorization: Bearer <credential>`, where a
credential starting `jq_` is an API key and anything else a JWT. A verified client
certificate counts when the call carries no bearer credential.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Protocol

from jobq.auth.certificates import Grant, principal_for
from jobq.auth.keys import ApiKey, looks_like_key, split_key
from jobq.auth.principal import ALL_TENANTS, Principal, Role
from jobq.auth.tokens import JwtVerifier
from jobq.core.errors import PermissionDenied, Unauthenticated

AUTHORIZATION = "authorization"

DEV_PRINCIPAL = Principal(
    subject="unauthenticated",
    tenant=ALL_TENANTS,
    roles=frozenset(Role),
    queues=None,
    via="unauthenticated",
)


class KeyLookup(Protocol):
    async def get(self, key_id: str) -> ApiKey | None: ...


class Authenticator:
    def __init__(
        self,
        keys: KeyLookup,
        *,
        bootstrap: Mapping[str, ApiKey] | None = None,
        jwt: JwtVerifier | None = None,
        certificates: Mapping[str, Grant] | None = None,
        unauthenticated: bool = False,
    ) -> None:
        self._keys = keys
        self._bootstrap = dict(bootstrap or {})
        self._jwt = jwt
        self._certificates = dict(certificates or {})
        self._unauthenticated = unauthenticated

    async def authenticate(
        self,
        metadata: Sequence[tuple[str, str | bytes]],
        peer_cert: bytes | None,
        now: dt.datetime,
    ) -> Principal:
        if self._unauthenticated:
            return DEV_PRINCIPAL
        values = [v for k, v in metadata if k.lower() == AUTHORIZATION]
        if values:
            return await self._bearer(values, now)
        if peer_cert is not None and self._certificates:
            principal = principal_for(peer_cert, self._certificates)
            if principal is None:
                raise PermissionDenied("client certificate subject is not mapped to any principal")
            return principal
        raise Unauthenticated("no credential: send authorization: Bearer <API key or token>")

    async def _bearer(self, values: list[str | bytes], now: dt.datetime) -> Principal:
        if len(values) != 1 or not isinstance(values[0], str):
            raise Unauthenticated("malformed authorization header: send exactly one")
        scheme, _, credential = values[0].partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential or " " in credential:
            raise Unauthenticated("malformed authorization header: expected 'Bearer <credential>'")
        if looks_like_key(credential):
            return await self._api_key(credential, now)
        if self._jwt is None:
            raise Unauthenticated("bearer token not accepted: this server takes API keys only")
        return await self._jwt.verify(credential)

    async def _api_key(self, credential: str, now: dt.datetime) -> Principal:
        parts = split_key(credential)
        if parts is None:
            raise Unauthenticated("malformed API key")
        key_id, secret = parts
        key = self._bootstrap.get(key_id) or await self._keys.get(key_id)
        # The same answer for an unknown id and a wrong secret: ids are not secret, but
        # which ones exist need not be told.
        if key is None or not key.matches(secret):
            raise Unauthenticated(f"unknown API key {key_id}")
        return self._key_principal(key_id, key, now)

    async def key_principal(self, key_id: str, now: dt.datetime) -> Principal:
        """The principal of a key whose secret was shown before (a console session signed
        at login): looked up again, so a revoked or expired key stops at once."""
        key = self._bootstrap.get(key_id) or await self._keys.get(key_id)
        if key is None:
            raise Unauthenticated(f"unknown API key {key_id}")
        return self._key_principal(key_id, key, now)

    def _key_principal(self, key_id: str, key: ApiKey, now: dt.datetime) -> Principal:
        if key.revoked_at is not None:
            raise Unauthenticated(f"API key {key_id} is revoked")
        if not key.usable(now):
            raise Unauthenticated(f"API key {key_id} expired")
        return Principal(
            subject=f"key:{key_id}",
            tenant=key.tenant,
            roles=key.roles,
            queues=key.queues,
            via="api-key",
        )
