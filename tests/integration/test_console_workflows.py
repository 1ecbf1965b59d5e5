"""The console's workflow page over HTTP (ADR 0013, 0016): every node and its state, live;
a viewer reads it and may not cancel; a submitter's confirmed cancel (CSRF-checked) cancels
every unfinished node; another tenant's caller is told it does not exist."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from jobq import AsyncClient
from jobq.client import Node
from jobq.server.app import ServerApp
from tests.auth_keys import ADMIN_KEY
from tests.integration.backends import running

DIAMOND = [
    Node("extract", "echo"),
    Node("left", "echo", depends_on=["extract"]),
    Node("right", "echo", depends_on=["extract"], queue="slow"),
    Node("load", "echo", depends_on=["left", "right"]),
]


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[ServerApp]:
    async with running(f"sqlite:///{tmp_path}/jobq.db") as server:
        yield server


@contextlib.asynccontextmanager
async def browser(app: ServerApp, key: str) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    """A browser logged in to the console with `key`, and the session's CSRF token."""
    base = f"http://127.0.0.1:{app.http_port}"
    async with aiohttp.ClientSession(base, cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        async with session.get("/login") as form:
            csrf = re.search(r'name="csrf" value="([^"]+)"', await form.text())
        assert csrf is not None
        login = {"csrf": csrf[1], "key": key}
        async with session.post("/login", data=login, allow_redirects=False) as answer:
            assert answer.status == 303
        async with session.get("/workflows") as page:
            csrf = re.search(r'name="csrf" value="([^"]+)"', await page.text())
        assert csrf is not None  # a new token at login
        yield session, csrf[1]


async def _keys(app: ServerApp, *roles: tuple[str, str]) -> list[str]:
    async with AsyncClient(f"127.0.0.1:{app.grpc_port}", token=ADMIN_KEY) as admin:
        return [
            (await admin.create_api_key(role.split("+"), tenant=tenant))[1]
            for role, tenant in roles
        ]


async def test_the_workflow_page_shows_every_node_and_a_viewer_may_not_cancel(
    app: ServerApp,
) -> None:
    submitter, viewer, stranger = await _keys(
        app, ("submitter", "acme"), ("viewer", "acme"), ("submitter+viewer", "globex")
    )
    async with AsyncClient(f"127.0.0.1:{app.grpc_port}", token=submitter) as client:
        workflow = await client.submit_workflow(DIAMOND, name="etl", on_failure="wait")
    # Given a diamond in tenant acme, when its viewer opens the page:
    async with browser(app, viewer) as (session, csrf):
        async with session.get(f"/workflows/{workflow.id}") as page:
            assert page.status == 200
            html = await page.text()
        assert 'id="on-failure">wait<' in html and 'id="state">running<' in html
        assert "3 waiting, 1 queued" in html
        for node in workflow.nodes:  # each node: key, state, its job's page, its parents
            row = re.search(rf'<tr id="node-{node.key}">(.*?)</tr>', html, re.S)
            assert row is not None
            assert f">{node.job.state.value}<" in row[1]
            assert f'href="/jobs/{node.job.id}"' in row[1]
        assert re.search(r'id="node-load">.*<td>left, right</td></tr>', html, re.S)
        assert 'hx-get="/workflows/' in html and "every 1s" in html  # polled while running
        assert 'id="cancel"' not in html  # no button it may not press
        # The live partial alone, and the node's job page links back to its workflow.
        async with session.get(f"/workflows/{workflow.id}/live") as live:
            assert live.status == 200
            assert "<html" not in (text := await live.text()) and 'id="nodes"' in text
        async with session.get(f"/jobs/{workflow.node('load').id}") as job:
            assert f'href="/workflows/{workflow.id}"' in await job.text()
        async with session.get("/workflows", params={"id": workflow.id}) as found:
            assert found.status == 200 and found.url.path == f"/workflows/{workflow.id}"
        # Then its cancel is refused with the role it lacks, and nothing changed.
        data = {"csrf": csrf, "confirmed": "yes"}
        async with session.post(f"/workflows/{workflow.id}/cancel", data=data) as refused:
            assert refused.status == 403
            assert "needs the submitter role" in await refused.text()
    # Another tenant's caller is told it does not exist, on every route.
    async with browser(app, stranger) as (session, csrf):
        for path in (f"/workflows/{workflow.id}", f"/workflows/{workflow.id}/live"):
            async with session.get(path) as page:
                assert page.status == 404
        data = {"csrf": csrf, "confirmed": "yes"}
        async with session.post(f"/workflows/{workflow.id}/cancel", data=data) as page:
            assert page.status == 404
    async with AsyncClient(f"127.0.0.1:{app.grpc_port}", token=submitter) as client:
        assert (await client.get_workflow(workflow.id)).state == "running"


async def test_a_confirmed_cancel_with_the_csrf_token_cancels_every_unfinished_node(
    app: ServerApp,
) -> None:
    owner, operator = await _keys(app, ("submitter+operator", "acme"), ("operator", "acme"))
    async with AsyncClient(f"127.0.0.1:{app.grpc_port}", token=owner) as client:
        workflow = await client.submit_workflow(DIAMOND)
        url = f"/workflows/{workflow.id}/cancel"
        # An operator without the submitter role is refused as CancelWorkflow refuses it.
        async with (
            browser(app, operator) as (session, csrf),
            session.post(url, data={"csrf": csrf}) as refused,
        ):
            assert refused.status == 403
        async with browser(app, owner) as (session, csrf):
            async with session.get(f"/workflows/{workflow.id}") as page:
                assert 'id="cancel"' in await page.text()
            # Without the token, refused; the first POST only asks, listing what will stop.
            async with session.post(url, data={"confirmed": "yes"}) as stale:
                assert stale.status == 403
            async with session.post(url, data={"csrf": csrf}) as ask:
                assert ask.status == 200
                asked = await ask.text()
            assert asked.count("<li>") == 4 and 'name="confirmed" value="yes"' in asked
            assert (await client.get_workflow(workflow.id)).state == "running"
            # When confirmed, every node is cancelled and the page stops polling.
            async with session.post(url, data={"csrf": csrf, "confirmed": "yes"}) as done:
                assert done.status == 200 and done.url.path == f"/workflows/{workflow.id}"
                html = await done.text()
            assert "4 cancelled" in html and 'id="state">failed<' in html
            assert "hx-get" not in html and 'id="cancel"' not in html
        got = await client.get_workflow(workflow.id)
        assert {n.job.state.value for n in got.nodes} == {"cancelled"}
