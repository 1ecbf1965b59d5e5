"""Console sessions behind a load balancer: two jq-server replicas on one PostgreSQL with one
JQ_CONSOLE_SECRET. A login on one is a session on the other; revoking the key ends it on
both at the next request; a replica with another secret asks to log in. A JWT logs in too."""

from __future__ import annotations

import contextlib
import json
import re
import time
from pathlib import Path

import aiohttp
import pytest

from jobq import AsyncClient
from tests.auth_keys import ADMIN_KEY
from tests.integration.backends import running
from tests.integration.test_auth_matrix import AUDIENCE, ISSUER, KID, Signer

SECRET = "a-console-secret-shared-by-the-replicas"


async def _get(browser: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with browser.get(url, allow_redirects=False) as response:
        return response.status, response.headers.get("Location", "")


async def test_a_login_on_one_replica_holds_on_another_until_the_key_is_revoked(
    pg_databases: object,
) -> None:
    url = str(pg_databases.create())  # type: ignore[attr-defined]
    async with contextlib.AsyncExitStack() as stack:
        a = await stack.enter_async_context(running(url, console_secret=SECRET))
        b = await stack.enter_async_context(running(url, console_secret=SECRET))
        other = await stack.enter_async_context(running(url, console_secret=SECRET[::-1]))
        admin = await stack.enter_async_context(
            AsyncClient(f"127.0.0.1:{a.grpc_port}", token=ADMIN_KEY)
        )
        info, key = await admin.create_api_key(
            ["operator"], tenant="default", description="console"
        )
        # Cookies are per host, not per port: one jar is one browser for all three.
        browser = await stack.enter_async_context(
            aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        )
        login = await _login(browser, f"http://127.0.0.1:{a.http_port}", key)
        assert login == (303, "/queues")
        # Given a login on replica a, replica b serves the page (the load balancer's choice).
        assert await _get(browser, f"http://127.0.0.1:{b.http_port}/queues") == (200, "")
        # A replica with another secret does not take the cookie.
        assert await _get(browser, f"http://127.0.0.1:{other.http_port}/queues") == (
            303,
            "/login",
        )
        # Revoked through the API: the next request on b asks to log in again.
        await admin.revoke_api_key(info.id)
        assert await _get(browser, f"http://127.0.0.1:{b.http_port}/queues") == (303, "/login")


async def _login(browser: aiohttp.ClientSession, base: str, credential: str) -> tuple[int, str]:
    async with browser.get(f"{base}/login") as form:
        found = re.search(r'name="csrf" value="([^"]+)"', await form.text())
    assert found is not None
    login = {"csrf": found[1], "key": credential}
    async with browser.post(f"{base}/login", data=login, allow_redirects=False) as answer:
        return answer.status, answer.headers.get("Location", "")


async def test_a_jwt_logs_in_to_the_console_under_its_roles(tmp_path: Path) -> None:
    signer = Signer(KID)
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [signer.jwk()]}))
    settings = {
        "auth_jwt_jwks": str(jwks),
        "auth_jwt_issuer": ISSUER,
        "auth_jwt_audience": AUDIENCE,
        "console_secret": SECRET,
    }
    async with (
        running(f"sqlite:///{tmp_path}/jobq.db", **settings) as app,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser,
    ):
        base = f"http://127.0.0.1:{app.http_port}"
        expired = signer.token(exp=int(time.time()) - 600, roles=["viewer"])
        assert (await _login(browser, base, expired))[0] == 401
        assert await _login(browser, base, signer.token(roles=["viewer"])) == (303, "/queues")
        async with browser.get(f"{base}/queues", allow_redirects=False) as page:
            assert page.status == 200
            assert "svc-reporting" in await page.text()  # the token's subject
        async with browser.get(f"{base}/workers", allow_redirects=False) as page:
            assert page.status == 200  # a viewer reads every page


@pytest.mark.parametrize("secret", ["too-short"])
def test_a_guessable_console_secret_is_refused_at_start(secret: str) -> None:
    from pydantic import ValidationError

    from jobq.config import ServerSettings

    with pytest.raises(ValidationError, match="JQ_CONSOLE_SECRET must be at least 32"):
        ServerSettings(console_secret=secret)
