"""JWT bearer tokens: verified with PyJWT against a JWKS file or URL.

Only asymmetric algorithms from an allow-list are accepted, so neither `none` nor an HS*
token "signed" with the public key gets through; issuer, audience, expiry and subject are
required; the clock skew allowed is bounded by the settings.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jwt

from jobq.auth.keys import KeyFormatError, check_tenant, parse_roles
from jobq.auth.principal import Principal
from jobq.core.errors import Unauthenticated

ASYMMETRIC = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
REQUIRED_CLAIMS = ["exp", "iss", "aud", "sub"]


def parse_algorithms(text: str, setting: str = "JQ_AUTH_JWT_ALGORITHMS") -> list[str]:
    algorithms = [a.strip() for a in text.split(",") if a.strip()]
    for algorithm in algorithms:
        if algorithm not in ASYMMETRIC:
            raise KeyFormatError(
                f"{setting}: {algorithm!r} is not allowed (asymmetric only: "
                f"{', '.join(sorted(ASYMMETRIC))})"
            )
    if not algorithms:
        raise KeyFormatError(f"{setting}: at least one algorithm")
    return algorithms


class _FileKeys:
    """A JWKS file, read again when it changes (key rotation without a restart)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._stamp: tuple[int, int] | None = None
        self._keys: dict[str, jwt.PyJWK] = {}

    def get(self, kid: str) -> jwt.PyJWK | None:
        stat = os.stat(self._path)
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            jwks = jwt.PyJWKSet.from_json(self._path.read_text())
            self._keys = {k.key_id: k for k in jwks.keys if k.key_id}
            self._stamp = stamp
        return self._keys.get(kid)


class JwtVerifier:
    def __init__(
        self,
        jwks: str,
        *,
        issuer: str,
        audience: str,
        algorithms: Sequence[str],
        leeway: dt.timedelta,
        refresh: dt.timedelta,
        cooldown: dt.timedelta = dt.timedelta(seconds=30),
        tenant_claim: str = "tenant",
        roles_claim: str = "roles",
        queues_claim: str = "queues",
    ) -> None:
        self._issuer = issuer
        self._audience = audience
        self._algorithms = list(algorithms)
        self._leeway = leeway
        self._tenant_claim = tenant_claim
        self._roles_claim = roles_claim
        self._queues_claim = queues_claim
        self._file: _FileKeys | None = None
        self._client: jwt.PyJWKClient | None = None
        if jwks.startswith(("https://", "http://")):
            # Cached for `refresh`; an unknown kid makes PyJWKClient fetch the set again, at
            # most once per `cooldown`, so forged kids cannot make it hammer the issuer.
            self._client = jwt.PyJWKClient(
                jwks,
                cache_jwk_set=True,
                lifespan=max(refresh.total_seconds(), 1.0),
                timeout=5,
                cooldown_duration=cooldown.total_seconds(),
            )
        else:
            self._file = _FileKeys(Path(jwks))

    async def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("malformed bearer token") from None
        algorithm = header.get("alg")
        if algorithm not in self._algorithms:
            raise Unauthenticated(f"token algorithm {algorithm!r} is not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthenticated("token has no key id (kid)")
        key = await self._key(kid)
        if key is None:
            raise Unauthenticated(f"unknown token key id {kid[:64]!r}")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=[algorithm],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("token expired") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated("token audience is not this server's") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated("token issuer is not trusted") from None
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"invalid token: {type(exc).__name__}") from None
        return self._principal(claims)

    async def _key(self, kid: str) -> jwt.PyJWK | None:
        try:
            if self._client is not None:
                # PyJWKClient fetches with urllib, which blocks.
                return await asyncio.to_thread(self._client.get_signing_key, kid)
            assert self._file is not None
            return await asyncio.to_thread(self._file.get, kid)
        except jwt.PyJWKClientError:
            return None
        except (OSError, ValueError, jwt.PyJWTError) as exc:
            raise Unauthenticated(f"token keys unavailable: {type(exc).__name__}") from None

    def _principal(self, claims: dict[str, Any]) -> Principal:
        subject = claims.get("sub")
        tenant = claims.get(self._tenant_claim)
        roles = claims.get(self._roles_claim)
        queues = claims.get(self._queues_claim)
        if isinstance(roles, str):
            roles = roles.split()
        try:
            if not isinstance(subject, str) or not subject:
                raise KeyFormatError("sub: a string")
            if not isinstance(tenant, str):
                raise KeyFormatError(f"{self._tenant_claim}: a string")
            check_tenant(tenant, self._tenant_claim)
            if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
                raise KeyFormatError(f"{self._roles_claim}: a list of roles")
            granted = parse_roles(roles, self._roles_claim)
            if queues is not None and not (
                isinstance(queues, list) and all(isinstance(q, str) for q in queues)
            ):
                raise KeyFormatError(f"{self._queues_claim}: a list of queue names")
        except KeyFormatError as exc:
            raise Unauthenticated(f"token claim {exc}") from None
        return Principal(
            subject=f"jwt:{subject[:200]}",
            tenant=tenant,
            roles=granted,
            queues=frozenset(queues) if queues is not None else None,
            via="jwt",
        )
