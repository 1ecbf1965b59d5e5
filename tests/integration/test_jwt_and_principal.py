"""JWKS from a URL and from a file, both picking up a new signing key without a restart; and
the principal the interceptor sets is what a unary and a streaming handler see."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from jobq.auth.authenticator import Authenticator
from jobq.auth.principal import current_principal
from jobq.client import AsyncClient
from jobq.core.clock import SystemClock
from jobq.core.errors import Unauthenticated
from jobq.server.authn import AuthInterceptor
from tests.auth_keys import BOOTSTRAP_KEYS, SUBMITTER_KEY
from tests.integration.backends import running
from tests.integration.test_auth_matrix import AUDIENCE, ISSUER, Signer


class Jwks:
    """A JWKS document served on loopback, whose keys the test replaces."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.fetches = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.fetches += 1
                body = json.dumps({"keys": outer.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@pytest.fixture
def jwks() -> Iterator[Jwks]:
    served = Jwks()
    served.thread.start()
    try:
        yield served
    finally:
        served.server.shutdown()
        served.server.server_close()


async def test_a_jwks_url_is_cached_and_a_new_kid_is_fetched(tmp_path: Path, jwks: Jwks) -> None:
    first, second = Signer("2026-11"), Signer("2026-12")
    jwks.keys = [first.jwk()]
    async with running(
        f"sqlite:///{tmp_path}/jobq.db",
        auth_jwt_jwks=jwks.url,
        auth_jwt_issuer=ISSUER,
        auth_jwt_audience=AUDIENCE,
        auth_jwt_jwks_cooldown=dt.timedelta(0),  # the test's rotation comes at once
    ) as app:
        address = f"127.0.0.1:{app.grpc_port}"
        async with AsyncClient(address, token=first.token()) as client:
            await client.submit("echo", {})
            await client.submit("echo", {})
        assert jwks.fetches == 1, "the set is cached, not fetched per call"
        # The issuer rotates: the new key appears at the URL, tokens name its kid.
        jwks.keys = [first.jwk(), second.jwk()]
        async with AsyncClient(address, token=second.token()) as client:
            await client.submit("echo", {})
        assert jwks.fetches == 2
        # A kid that is nowhere is refused, whatever the URL says.
        async with AsyncClient(address, token=Signer("never").token()) as client:
            with pytest.raises(Unauthenticated, match="unknown token key id"):
                await client.submit("echo", {})


async def test_a_jwks_file_is_read_again_when_it_changes(tmp_path: Path) -> None:
    first, second = Signer("a"), Signer("b")
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [first.jwk()]}))
    async with running(
        f"sqlite:///{tmp_path}/jobq.db",
        auth_jwt_jwks=str(path),
        auth_jwt_issuer=ISSUER,
        auth_jwt_audience=AUDIENCE,
    ) as app:
        address = f"127.0.0.1:{app.grpc_port}"
        async with AsyncClient(address, token=second.token()) as client:
            with pytest.raises(Unauthenticated):
                await client.submit("echo", {})
            path.write_text(json.dumps({"keys": [first.jwk(), second.jwk()]}))
            await client.submit("echo", {})


# A bare gRPC server with only the interceptor: what the services would see.
ECHO = "/test.Echo/Who"
STREAM = "/test.Echo/WhoStream"


def _who() -> bytes:
    principal = current_principal.get()
    return json.dumps(None if principal is None else principal.subject).encode()


async def _unary(request: bytes, context: Any) -> bytes:
    return _who()


async def _stream(request: bytes, context: Any) -> AsyncIterator[bytes]:
    yield _who()
    yield _who()  # still set after the first message


@pytest.fixture
async def echo_server() -> AsyncIterator[str]:
    from jobq.auth.keys import parse_bootstrap

    authenticator = Authenticator(_NoKeys(), bootstrap=parse_bootstrap(BOOTSTRAP_KEYS))
    server = grpc.aio.server(interceptors=[AuthInterceptor(authenticator, SystemClock())])
    handlers = {
        "Who": grpc.unary_unary_rpc_method_handler(_unary),
        "WhoStream": grpc.unary_stream_rpc_method_handler(_stream),
    }
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("test.Echo", handlers)])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(0)


class _NoKeys:
    async def get(self, key_id: str) -> None:
        return None


async def test_handlers_see_the_principal_for_the_whole_call(
    echo_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jobq.auth import permissions

    monkeypatch.setitem(permissions.REQUIRED, ECHO, permissions.AUTHENTICATED)
    monkeypatch.setitem(permissions.REQUIRED, STREAM, permissions.AUTHENTICATED)
    metadata = [("authorization", f"Bearer {SUBMITTER_KEY}")]
    async with grpc.aio.insecure_channel(echo_server) as channel:
        unary = await channel.unary_unary(ECHO)(b"", metadata=metadata, timeout=5)
        streamed = [m async for m in channel.unary_stream(STREAM)(b"", metadata=metadata)]
    assert json.loads(unary) == "key:0000000000000001"
    assert [json.loads(m) for m in streamed] == ["key:0000000000000001"] * 2
    assert current_principal.get() is None  # nothing leaks out of the call


def test_the_leeway_setting_is_bounded() -> None:
    from jobq.config import ConfigError, ServerSettings, load

    with pytest.raises(ConfigError, match="JQ_AUTH_JWT_LEEWAY"):
        load(
            ServerSettings,
            auth_jwt_jwks="x",
            auth_jwt_issuer="i",
            auth_jwt_audience="a",
            auth_jwt_leeway=dt.timedelta(hours=1),
        )
