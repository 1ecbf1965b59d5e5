"""API keys: `jq_<id>_<secret>`, where only the id and a SHA-256 of the secret are kept.

The secret is 32 random bytes (`secrets`), so a plain SHA-256 is as good as a slow hash:
there is nothing to guess. The id is the table's primary key, so every call looks the key
up by its index and a revocation holds on the next call on every replica.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Iterable

from jobq.auth.principal import ALL_TENANTS, Role

PREFIX = "jq"
ID_BYTES = 8  # 16 hex digits: unique enough among one deployment's keys
SECRET_BYTES = 32
_KEY = re.compile(r"^jq_([0-9a-f]{16})_([A-Za-z0-9_-]{43,})$")
_ID = re.compile(r"^[0-9a-f]{16}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_TENANT = re.compile(r"^(\*|[A-Za-z0-9][A-Za-z0-9._-]{0,62})$")


class KeyFormatError(ValueError):
    """Not a jobq API key, or a bootstrap entry that cannot be used; never names a secret."""


@dataclasses.dataclass(frozen=True, slots=True)
class ApiKey:
    """One stored key: everything but the secret, of which only the hash is kept."""

    id: str
    secret_sha256: str
    tenant: str
    roles: frozenset[Role]
    queues: frozenset[str] | None = None  # None: every queue
    description: str = ""
    created_at: dt.datetime | None = None
    expires_at: dt.datetime | None = None
    revoked_at: dt.datetime | None = None

    def usable(self, now: dt.datetime) -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or now < self.expires_at

    def matches(self, secret: str) -> bool:
        return hmac.compare_digest(hash_secret(secret), self.secret_sha256)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_key() -> tuple[str, str, str]:
    """A fresh key: (id, secret, the whole key the caller is shown once)."""
    key_id = secrets.token_hex(ID_BYTES)
    secret = secrets.token_urlsafe(SECRET_BYTES)
    return key_id, secret, f"{PREFIX}_{key_id}_{secret}"


def split_key(text: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed key, else None."""
    match = _KEY.match(text)
    return (match.group(1), match.group(2)) if match else None


def looks_like_key(text: str) -> bool:
    return text.startswith(f"{PREFIX}_")


def parse_roles(values: Iterable[str], where: str) -> frozenset[Role]:
    roles = set()
    for value in values:
        try:
            roles.add(Role(value))
        except ValueError:
            known = ", ".join(r.value for r in Role)
            raise KeyFormatError(f"{where}: unknown role {value!r} (one of {known})") from None
    if not roles:
        raise KeyFormatError(f"{where}: at least one role")
    return frozenset(roles)


def check_tenant(tenant: str, where: str) -> str:
    if not _TENANT.match(tenant):
        raise KeyFormatError(f"{where}: tenant must be '*' or 1-63 letters, digits, '.', '_', '-'")
    return tenant


def parse_bootstrap(text: str, setting: str = "JQ_AUTH_BOOTSTRAP_KEYS") -> dict[str, ApiKey]:
    """The bootstrap keys of a JSON list, by id; each entry gives the key or its hash.

    `{"key": "jq_<id>_<secret>", ...}` or `{"id": "<id>", "sha256": "<hex>", ...}`, with
    "tenant" (default "*"), "roles" (required), "queues" (optional) and "description".
    The hash form keeps the secret out of the server's configuration entirely.
    """
    try:
        entries = json.loads(text)
    except ValueError:
        raise KeyFormatError(f"{setting}: not JSON (a list of key entries)") from None
    if not isinstance(entries, list):
        raise KeyFormatError(f"{setting}: a JSON list of key entries")
    keys: dict[str, ApiKey] = {}
    for index, entry in enumerate(entries):
        where = f"{setting}[{index}]"
        if not isinstance(entry, dict):
            raise KeyFormatError(f"{where}: an object")
        unknown = set(entry) - {"key", "id", "sha256", "tenant", "roles", "queues", "description"}
        if unknown:
            raise KeyFormatError(f"{where}: unknown field {sorted(unknown)[0]!r}")
        if "key" in entry:
            parts = split_key(str(entry["key"]))
            if parts is None:
                raise KeyFormatError(f"{where}.key: not a jq_<id>_<secret> key")
            key_id, digest = parts[0], hash_secret(parts[1])
        else:
            key_id, digest = str(entry.get("id", "")), str(entry.get("sha256", "")).lower()
            if not _ID.match(key_id) or not _SHA256.match(digest):
                raise KeyFormatError(
                    f'{where}: give "key", or "id" (16 hex digits) and "sha256" (64)'
                )
        if key_id in keys:
            raise KeyFormatError(f"{where}: key id {key_id} appears twice")
        roles = entry.get("roles")
        if not isinstance(roles, list):
            raise KeyFormatError(f"{where}.roles: a list of roles")
        queues = entry.get("queues")
        if queues is not None and not (
            isinstance(queues, list) and queues and all(isinstance(q, str) for q in queues)
        ):
            raise KeyFormatError(f"{where}.queues: a non-empty list of queue names")
        keys[key_id] = ApiKey(
            id=key_id,
            secret_sha256=digest,
            tenant=check_tenant(str(entry.get("tenant", ALL_TENANTS)), f"{where}.tenant"),
            roles=parse_roles(roles, f"{where}.roles"),
            queues=frozenset(queues) if queues is not None else None,
            description=str(entry.get("description", "bootstrap")),
        )
    return keys


def bootstrap_entry(key: str, tenant: str, roles: Iterable[Role], queues: Iterable[str]) -> str:
    """The hash-only JSON entry for `key`, for JQ_AUTH_BOOTSTRAP_KEYS."""
    parts = split_key(key)
    assert parts is not None
    entry: dict[str, object] = {
        "id": parts[0],
        "sha256": hash_secret(parts[1]),
        "tenant": tenant,
        "roles": sorted(r.value for r in roles),
    }
    if queues := sorted(queues):
        entry["queues"] = queues
    return json.dumps(entry)
