"""Where the PostgreSQL adapter gets its login: the URL itself, or AWS Secrets Manager.

A secret rotated by Secrets Manager changes under a running pool, so the adapter asks
`connection_kwargs()` before each new connection and calls `refresh()` when the server
says the password is wrong (`is_auth_failure`).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any, Protocol

from jobq.core.errors import StoreUnavailable

__all__ = [
    "DatabaseCredentials",
    "SecretsManagerCredentials",
    "StaticCredentials",
    "build_credentials",
    "is_auth_failure",
]

# SQLSTATE invalid_password and invalid_authorization_specification.
_AUTH_SQLSTATES = frozenset({"28P01", "28000"})
_AUTH_MESSAGE = "password authentication failed"

# The keys of the JSON secret Secrets Manager's RDS rotation templates write, and the
# psycopg connect() keyword each one becomes.
_SECRET_KEYS = {"username": "user", "password": "password", "host": "host", "dbname": "dbname"}

_CLIENT_ERROR_HINTS = {
    "ResourceNotFoundException": "no such secret, or no AWSCURRENT version",
    "AccessDeniedException": "this role may not call secretsmanager:GetSecretValue on it",
    "DecryptionFailure": "its KMS key cannot be used to decrypt it",
}


class DatabaseCredentials(Protocol):
    async def connection_kwargs(self) -> dict[str, str]:
        """Keyword arguments for psycopg's connect(): only those this source provides."""
        ...

    async def refresh(self) -> dict[str, str]:
        """Forget anything cached and read again; called after the server rejects a login."""
        ...


class StaticCredentials:
    """The login is in the database URL; nothing to add and nothing to re-read."""

    async def connection_kwargs(self) -> dict[str, str]:
        return {}

    async def refresh(self) -> dict[str, str]:
        return {}


class SecretsManagerCredentials:
    """Reads an RDS-format JSON secret, caches it for `cache_ttl` seconds.

    Concurrent readers share one in-flight GetSecretValue call: when a rotation makes
    every pooled connection fail at once, the secret is read once, not once per connection.
    """

    def __init__(
        self,
        secret_arn: str,
        *,
        client_factory: Callable[[], Any],
        cache_ttl: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._arn = secret_arn
        self._client_factory = client_factory
        self._client: Any = None
        self._ttl = cache_ttl
        self._clock = clock
        self._cached: dict[str, str] | None = None
        self._read_at = 0.0
        self._in_flight: asyncio.Task[dict[str, str]] | None = None

    async def connection_kwargs(self) -> dict[str, str]:
        if self._cached is not None and self._clock() - self._read_at < self._ttl:
            return dict(self._cached)
        return await self._read()

    async def refresh(self) -> dict[str, str]:
        self._cached = None
        return await self._read()

    async def _read(self) -> dict[str, str]:
        if self._in_flight is None:
            task = asyncio.create_task(asyncio.to_thread(self._get_secret))
            task.add_done_callback(self._read_done)
            self._in_flight = task
        # shield: one waiter being cancelled must not cancel the read the others wait on.
        return dict(await asyncio.shield(self._in_flight))

    def _read_done(self, task: asyncio.Task[dict[str, str]]) -> None:
        self._in_flight = None
        if task.cancelled() or task.exception() is not None:
            return
        self._cached = task.result()
        self._read_at = self._clock()

    def _get_secret(self) -> dict[str, str]:
        """Runs in a worker thread: boto3 blocks, and building a client reads model files."""
        from botocore.exceptions import (  # type: ignore[import-untyped]
            BotoCoreError,
            ClientError,
        )

        try:
            if self._client is None:
                self._client = self._client_factory()
            response = self._client.get_secret_value(SecretId=self._arn)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "unknown"))
            hint = _CLIENT_ERROR_HINTS.get(code, str(exc))
            raise StoreUnavailable(f"database secret {self._arn}: {code}: {hint}") from exc
        except BotoCoreError as exc:
            raise StoreUnavailable(f"database secret {self._arn}: {exc}") from exc
        return _parse_secret(self._arn, response.get("SecretString"))


def _parse_secret(arn: str, secret_string: object) -> dict[str, str]:
    # Errors name keys, never values, and chain no cause: the text may be the password.
    def problem(what: str) -> StoreUnavailable:
        return StoreUnavailable(f"database secret {arn}: {what}")

    if not isinstance(secret_string, str):
        raise problem("has no SecretString (a binary secret cannot hold a login)")
    try:
        data = json.loads(secret_string)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise problem("SecretString is not a JSON object")
    missing = [
        k for k in ("username", "password") if not (isinstance(data.get(k), str) and data[k])
    ]
    if missing:
        raise problem(f"SecretString lacks a non-empty string {' and '.join(missing)}")

    kwargs = {
        kwarg: data[key] for key, kwarg in _SECRET_KEYS.items() if data.get(key) not in (None, "")
    }
    port = data.get("port")
    if port not in (None, ""):
        if isinstance(port, bool) or not str(port).isdigit():
            raise problem("port is not a number")
        kwargs["port"] = str(port)
    return {k: str(v) for k, v in kwargs.items()}


def is_auth_failure(exc: BaseException) -> bool:
    """True when PostgreSQL (or a proxy in front of it) rejected the login itself."""
    try:
        import psycopg
    except ImportError:
        return False
    if not isinstance(exc, psycopg.OperationalError):
        return False
    if exc.sqlstate in _AUTH_SQLSTATES:
        return True
    # A failed connect() has no result, so no SQLSTATE, only libpq's message; proxies such
    # as PgBouncer may also send this message under another code.
    return _AUTH_MESSAGE in str(exc)


def build_credentials(secret_arn: str | None, region: str | None) -> DatabaseCredentials:
    """The composition root's choice: a secret when one is configured, else the URL."""
    if not secret_arn:
        return StaticCredentials()

    def client_factory() -> Any:
        import boto3  # type: ignore[import-untyped]

        # A session per client: boto3's default session is not thread-safe.
        return boto3.session.Session().client("secretsmanager", region_name=region)

    return SecretsManagerCredentials(secret_arn, client_factory=client_factory)
