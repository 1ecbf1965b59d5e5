"""The web console in Debian's headless Chromium (Playwright), against a real jq-server.

Every page renders; a replay from the dead-letter page makes the job run; a cancel from the
job page cancels it; a schedule's "run now" submits its job; a viewer sees the pages and
cannot act. Screenshots of the main pages
go to the test's tmp_path and to .jq/screenshots/ for a reviewer.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, expect, sync_playwright

from jobq import JobState
from jobq.examples import echo, fail, flaky, progress, sleep
from jobq.testing import ServerThread
from tests.auth_keys import BOOTSTRAP_KEYS, OWNER_KEY, VIEWER_KEY, WORKER_KEY
from tests.e2e.conftest import wait_until

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
# The network is closed: Chromium must not try to reach Google's services at start.
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    with ServerThread(
        tmp_path / "jobq", auth_unauthenticated=False, auth_bootstrap_keys=BOOTSTRAP_KEYS
    ) as server:
        yield server


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[BrowserContext]:
    assert Path(CHROMIUM).exists(), "Chromium missing: scripts/install-chromium.sh installs it"
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            args=ARGS,
            headless=True,
            viewport={"width": 1280, "height": 800},
        )
        try:
            yield context
        finally:
            context.close()


class Shots:
    def __init__(self, tmp_path: Path) -> None:
        self.dir = tmp_path / "screenshots"
        self.dir.mkdir()
        self.keep = REPO / ".jq" / "screenshots"
        self.keep.mkdir(parents=True, exist_ok=True)

    def take(self, page: Page, name: str) -> None:
        path = self.dir / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        shutil.copy(path, self.keep / path.name)


def login(context: BrowserContext, base: str, key: str) -> Page:
    page = context.new_page()
    violations: list[str] = []
    page.on(
        "console",
        lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
    )
    page.violations = violations  # type: ignore[attr-defined]
    page.goto(f"{base}/queues")
    expect(page).to_have_url(f"{base}/login")  # no session: log in first
    page.fill("input[name=key]", key)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{base}/queues")
    return page


def test_the_console_in_a_browser(
    server: ServerThread, browser: BrowserContext, tmp_path: Path
) -> None:
    shots = Shots(tmp_path)
    base = server.http_url
    tasks = (echo, fail, flaky, progress, sleep)
    with server.worker(*tasks, token=WORKER_KEY), server.client(token=OWNER_KEY) as client:
        done = client.submit("echo", {"hello": "console"})
        dead = client.submit("flaky", {"failures": 1}, max_attempts=1)
        wait_until(lambda: client.get(dead.id).state is JobState.DEAD, what="a dead letter")
        wait_until(lambda: client.get(done.id).state is JobState.SUCCEEDED, what="echo")
        client.schedules.create("hourly-echo", interval="1h", type="echo", payload={"s": 1})

        # A viewer: every page renders, no action is allowed.
        viewer = login(browser, base, VIEWER_KEY)
        expect(viewer.locator("#queues")).to_contain_text("default")
        for path, marker in (
            ("/jobs", "#jobs"),
            (f"/jobs/{done.id}", "#events"),
            ("/dead", "#dead"),
            ("/workers", "#workers"),
            ("/schedules", "#schedules"),
            ("/schedules/default/hourly-echo", "#next-fire-times"),
        ):
            viewer.goto(base + path)
            expect(viewer.locator(marker)).to_be_visible()
        viewer.click("#pause")
        expect(viewer.locator("#error")).to_contain_text("needs the admin or operator role")
        viewer.goto(f"{base}/dead")
        viewer.check(f"input[value='{dead.id}']")
        viewer.click("#replay")
        expect(viewer.locator("#error")).to_contain_text("needs the operator role")
        assert client.get(dead.id).state is JobState.DEAD
        viewer.context.clear_cookies()

        # An operator: replay from the dead-letter page makes the job run (and succeed).
        page = login(browser, base, OWNER_KEY)
        shots.take(page, "queues")
        page.goto(f"{base}/dead")
        expect(page.locator("#dead")).to_contain_text(dead.id)
        shots.take(page, "dead-letters")
        page.check(f"input[value='{dead.id}']")
        page.click("#replay")
        wait_until(lambda: client.get(dead.id).state is JobState.SUCCEEDED, what="replayed run")
        again = client.get(dead.id)
        assert again.result == {"succeeded_on_attempt": 2}

        # Cancel from the job page: the running job ends cancelled, shown live.
        running = client.submit("sleep", {"seconds": 60})
        wait_until(lambda: client.get(running.id).state is JobState.RUNNING, what="sleep runs")
        page.goto(f"{base}/jobs/{running.id}")
        expect(page.locator("#state")).to_have_text("running")
        shots.take(page, "job-running")
        page.click("#cancel")
        expect(page.locator("#state")).to_have_text("cancelled", timeout=20_000)
        assert client.get(running.id).state is JobState.CANCELLED

        # The job list filters and pages; the job page shows payload, result and events.
        page.goto(f"{base}/jobs?state=succeeded")
        expect(page.locator("#jobs")).to_contain_text(done.id)
        expect(page.locator("#jobs")).not_to_contain_text(running.id)
        shots.take(page, "jobs")
        page.goto(f"{base}/jobs/{done.id}")
        expect(page.locator("#payload")).to_contain_text('"hello": "console"')
        expect(page.locator("#result")).to_contain_text('"hello": "console"')
        expect(page.locator("#events")).to_contain_text("succeeded")
        shots.take(page, "job")
        page.goto(f"{base}/workers")
        expect(page.locator("#workers")).to_contain_text("echo")
        shots.take(page, "workers")

        # A schedule run now from its page: the run's job page, and the run in its history.
        page.goto(f"{base}/schedules")
        page.click("text=hourly-echo")
        shots.take(page, "schedule")
        page.click("#trigger")
        expect(page.locator("#events")).to_be_visible()
        (run,) = client.schedules.get("hourly-echo").recent_runs
        assert run.manual and run.job_id and page.url == f"{base}/jobs/{run.job_id}"
        job_id = run.job_id
        wait_until(lambda: client.get(job_id).state is JobState.SUCCEEDED, what="the run")

        # Pause from the queues page, and a discard that asks first.
        page.goto(f"{base}/queues")
        page.click("#queues button")
        expect(page.locator("#queues")).to_contain_text("(paused)")
        page.click("#queues button")
        expect(page.locator("#queues")).not_to_contain_text("(paused)")
        gone = client.submit("fail", {"permanent": True}, max_attempts=1)
        wait_until(lambda: client.get(gone.id).state is JobState.DEAD, what="a second dead job")
        page.goto(f"{base}/dead")
        page.check(f"input[value='{gone.id}']")
        page.click("#discard")
        expect(page.locator("h1")).to_contain_text("Discard 1 dead job for good?")
        assert client.get(gone.id).state is JobState.DEAD  # nothing happened yet
        page.click("#confirm")
        expect(page).to_have_url(f"{base}/dead")
        assert client.list(states=["dead"]).jobs == []
    assert page.violations == [] and viewer.violations == []  # type: ignore[attr-defined]


def test_an_action_without_the_session_csrf_token_is_refused(server: ServerThread) -> None:
    import http.cookiejar
    import re
    import urllib.error
    import urllib.parse
    import urllib.request

    with server.worker(fail, token=WORKER_KEY), server.client(token=OWNER_KEY) as client:
        dead = client.submit("fail", {"permanent": True}, max_attempts=1)
        wait_until(lambda: client.get(dead.id).state is JobState.DEAD, what="a dead letter")
    browser = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    form = browser.open(f"{server.http_url}/login").read().decode()
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert csrf is not None
    login = urllib.parse.urlencode({"csrf": csrf[1], "key": OWNER_KEY}).encode()
    assert browser.open(f"{server.http_url}/login", data=login).geturl().endswith("/queues")
    # Given a logged-in session, a form posted from elsewhere (no or a forged token) fails.
    forged = urllib.parse.urlencode({"csrf": "forged", "id": dead.id}).encode()
    with pytest.raises(urllib.error.HTTPError) as refused:
        browser.open(f"{server.http_url}/dead/replay", data=forged)
    assert refused.value.code == 403
    refused.value.close()  # it owns the response's socket: left open, a ResourceWarning
    with server.client(token=OWNER_KEY) as client:
        assert client.get(dead.id).state is JobState.DEAD
