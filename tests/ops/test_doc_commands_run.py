"""Every `jq-ctl` command that docs/deploy.md and the runbooks show, run as written against a
real jq-server on PostgreSQL, and what each did checked; then every ```sql block of the
runbooks run on that server's database, as a read-only diagnosis role.

One server, one worker and one database for the module. The state the pages act on is made
the way production makes it: a worker on queue `q` that is busy with a long job and whose
`doc.flaky` task fails while "the upstream is down", so its jobs are dead-lettered.
Placeholders (`<job-id>`) are filled with real ids. The keys are the pages' own: the admin
key `jq-ctl keys bootstrap --role admin --role operator` made (docs/deploy.md), given to
the server as its hash only, and the on-call key that admin makes with the command of
docs/runbooks/README.md, which every runbook command but `keys list` runs with.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import re
import shlex
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
import pytest_asyncio
from click.testing import Result
from ctl_runner import run_ctl
from doc_commands import RUNBOOKS, RUNBOOKS_README, shown_commands

from jobq.client import AsyncClient
from jobq.core.errors import NotFound
from jobq.core.states import JobState
from jobq.server.app import ServerApp
from jobq.worker.task import task
from tests.auth_keys import BOOTSTRAP_KEYS, OWNER_KEY
from tests.integration.backends import running
from tests.integration.inprocess import running_worker

ON_MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")  # the loop of the one server

COMMANDS = shown_commands("jq-ctl")
CURL = shown_commands("curl")
BOOTSTRAP = "jq-ctl keys bootstrap --role admin --role operator"
ON_CALL = "jq-ctl keys create --tenant '*' --role operator --role viewer --description on-call"
ADMIN_ONLY = {"jq-ctl keys create --tenant acme --role submitter --expires 90d", "jq-ctl keys list"}
# Commands a page shows that cannot mean anything against a test server, and why.
NOT_RUN: dict[str, str] = {}


@dataclasses.dataclass
class Upstream:
    """What the tasks depend on: down until the fix is deployed; the long job's end."""

    down: bool = True
    release: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)


UPSTREAM = Upstream()


@task("doc.hold", queue="q")
async def hold(payload: Any) -> Any:
    await UPSTREAM.release.wait()
    return payload


@task("doc.flaky", queue="q")
async def flaky(payload: Any) -> Any:
    if UPSTREAM.down:
        raise RuntimeError("upstream refused the call")
    return payload


TASKS = {t.name: t for t in (hold, flaky)}


@dataclasses.dataclass
class Deployment:
    server: ServerApp
    client: AsyncClient
    database_url: str
    bootstrapped: Result
    env: dict[str, str]
    worker_id: str
    running: str
    dead: list[str]
    revoked_key: str


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def deployment(pg_databases: Any) -> AsyncIterator[Deployment]:
    # docs/deploy.md "API keys": the first admin key is made offline; the server gets the
    # entry from stderr (JQ_AUTH_BOOTSTRAP_KEYS), never the key.
    made = run_ctl(BOOTSTRAP)
    assert made.exit_code == 0, made.stderr
    key, entry = made.stdout.strip(), json.loads(made.stderr)
    keys = json.dumps([*json.loads(BOOTSTRAP_KEYS), entry])
    url = pg_databases.create()
    UPSTREAM.down = True
    UPSTREAM.release = asyncio.Event()
    async with (
        running(url, auth_bootstrap_keys=keys, scheduler_interval=dt.timedelta(seconds=1)) as app,
        AsyncClient(f"127.0.0.1:{app.grpc_port}", token=OWNER_KEY) as client,
    ):
        await client.create_queue("q", retention=dt.timedelta(days=1))
        async with running_worker(app, TASKS):
            [worker] = await client.list_workers()
            dead = [
                (await client.submit("doc.flaky", {"n": n}, queue="q", max_attempts=1)).id
                for n in range(6)
            ]
            for job_id in dead:
                assert (await client.wait(job_id)).state is JobState.DEAD
            long_job = await client.submit("doc.hold", {"long": True}, queue="q")
            await until(lambda: state_of(client, long_job.id), JobState.RUNNING)
            stored, _ = await client.create_api_key(
                ["submitter"], tenant="acme", description="left by a leaver"
            )
            await client.revoke_api_key(stored.id)
            try:
                yield Deployment(
                    server=app,
                    client=client,
                    database_url=url,
                    bootstrapped=made,
                    env={"JQ_SERVER_ADDRESS": f"127.0.0.1:{app.grpc_port}", "JQ_TOKEN": key},
                    worker_id=worker.id,
                    running=long_job.id,
                    dead=dead,
                    revoked_key=stored.id,
                )
            finally:
                UPSTREAM.release.set()


async def state_of(client: AsyncClient, job_id: str) -> JobState:
    return (await client.get(job_id)).state


async def until(probe: Any, expected: Any, within: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while (value := await probe()) != expected:
        assert asyncio.get_running_loop().time() < deadline, f"{value!r}, not {expected!r}"
        await asyncio.sleep(0.05)


class Pages:
    """Runs the pages' commands, filling placeholders, and remembers which ran."""

    def __init__(self, deployment: Deployment) -> None:
        self.admin = deployment.env
        self.on_call: dict[str, str] = {}
        self.ran: set[str] = set()

    async def run(self, command: str, *ids: str, answer: str | None = None) -> str:
        assert command in {c for _, c in COMMANDS}, f"no page shows `{command}`"
        filled = command
        for job_id in ids:
            filled = filled.replace("<job-id>", job_id, 1)
        assert "<" not in filled, filled
        env = self.admin if command in ADMIN_ONLY or not self.on_call else self.on_call
        result = await asyncio.to_thread(run_ctl, filled, env, answer)
        assert result.exit_code == 0, f"`{filled}` exited {result.exit_code}:\n{result.stderr}"
        self.ran.add(command)
        return result.stdout


def row(table: str, key: str) -> str:
    """The line of a printed table that holds `key`."""
    [line] = [line for line in table.splitlines() if key in line]
    return line


@ON_MODULE_LOOP
async def test_every_jq_ctl_command_on_the_pages_does_what_the_page_says(
    deployment: Deployment,
) -> None:
    d, client = deployment, deployment.client
    pages = Pages(d)
    pages.ran.add(BOOTSTRAP)  # run by the fixture: the key every command here uses

    # deploy.md: the bootstrap key authenticates once the server has its entry (the admin
    # commands below run with it); the entry holds no secret. The on-call key it makes
    # runs every runbook command but `keys list`.
    key = d.env["JQ_TOKEN"]
    assert re.fullmatch(r"jq_[0-9a-f]{16}_\S+", key), d.bootstrapped.stdout
    entry = json.loads(d.bootstrapped.stderr)
    assert entry["roles"] == ["admin", "operator"] and entry["tenant"] == "*"
    assert key.split("_", 2)[2] not in d.bootstrapped.stderr
    on_call = (await pages.run(ON_CALL)).strip()
    [info] = [k for k in await client.list_api_keys() if on_call.startswith(f"jq_{k.id}_")]
    assert (info.tenant, sorted(info.roles), info.description) == (
        "*",
        ["operator", "viewer"],
        "on-call",
    )
    pages.on_call = d.env | {"JQ_TOKEN": on_call}
    made = await pages.run("jq-ctl keys create --tenant acme --role submitter --expires 90d")
    acme_key = made.strip()
    [info] = [k for k in await client.list_api_keys() if acme_key.startswith(f"jq_{k.id}_")]
    assert (info.tenant, info.roles) == ("acme", ["submitter"])
    assert info.expires_at is not None and info.created_at is not None
    assert info.expires_at - info.created_at == dt.timedelta(days=90)
    async with AsyncClient(d.env["JQ_SERVER_ADDRESS"], token=acme_key) as acme:
        later = await acme.submit("doc.flaky", {}, queue="later", delay=dt.timedelta(hours=1))
        assert later.tenant == "acme"
    # JobqNoActiveWorkers: "shows whether it is revoked or expired"
    keys = await pages.run("jq-ctl keys list")
    revoked, live = row(keys, d.revoked_key), row(keys, info.id)
    assert len(re.findall(r"\d{4}-\d\d-\d\d", revoked)) == 2  # created, revoked
    assert len(re.findall(r"\d{4}-\d\d-\d\d", live)) == 2  # created, expires

    # The first look (runbooks README "Useful everywhere")
    totals = await pages.run("jq-ctl stats")
    assert re.search(r"active workers\s+1\b", totals), totals
    assert re.search(r"dead\s.*\b6\b", totals) and re.search(r"running\s.*\b1\b", totals)
    for command in ("jq-ctl queues stats", "jq-ctl queues stats q"):
        stats = row(await pages.run(command), " q ")
        assert re.search(r"\b6\b", stats) and re.search(r"\b1\b", stats), stats
    assert "later" in await pages.run("jq-ctl queues stats")
    assert "later" not in await pages.run("jq-ctl queues stats q")
    assert "q" in row(await pages.run("jq-ctl queues list"), " 1d")
    workers = row(await pages.run("jq-ctl workers list"), d.worker_id)
    assert "active" in workers and "doc.hold" in workers
    # "what is running now, on which worker"
    running_now = row(await pages.run("jq-ctl list --state running --queue q"), d.running)
    assert "running" in running_now and d.worker_id in running_now, running_now
    for command in ("jq-ctl list", "jq-ctl list --all"):
        listed = await pages.run(command)
        assert d.running in listed and all(job_id in listed for job_id in d.dead)

    # JobqDeadLettersRising / DatabaseStorageLow: what died, and why
    for command in ("jq-ctl dlq list --limit 20", "jq-ctl dlq list --queue q"):
        listed = await pages.run(command)
        assert all(job_id in listed for job_id in d.dead) and d.running not in listed
    shown = await pages.run("jq-ctl get <job-id>", d.dead[0])
    assert "upstream refused the call" in shown and "1 of 1" in shown and '{"n": 0}' in shown

    # Fixes that change a queue (DatabaseCpuHigh, JobqLeasesExpiring, DatabaseStorageLow)
    await pages.run("jq-ctl queues update q --concurrency 20")
    await pages.run("jq-ctl queues update q --lease-timeout 10m")
    await pages.run("jq-ctl queues update q --retention 7d")
    [q] = [queue for queue in await client.list_queues() if queue.name == "q"]
    assert q.concurrency_limit == 20
    assert q.lease_timeout == dt.timedelta(minutes=10)
    assert q.retention == dt.timedelta(days=7)

    # JobqQueueBacklogGrowing: pause; submits still land and wait; list them; resume
    await pages.run("jq-ctl queues pause q")
    assert [queue.paused for queue in await client.list_queues() if queue.name == "q"] == [True]
    UPSTREAM.down = False  # the fix is deployed: replayed and new jobs now succeed
    waiting = [(await client.submit("doc.flaky", {"w": n}, queue="q")).id for n in range(2)]
    await asyncio.sleep(0.5)  # several lease polls of the worker, which has room
    queued = await pages.run("jq-ctl list --state queued --queue q")
    assert all(job_id in row(queued, job_id) for job_id in waiting)
    assert [await state_of(client, job_id) for job_id in waiting] == [JobState.QUEUED] * 2
    await pages.run("jq-ctl queues resume q")
    for job_id in waiting:
        assert (await client.wait(job_id)).state is JobState.SUCCEEDED

    # JobqDeadLettersRising "Fix": replay some, discard some (it asks first), replay the rest
    await pages.run("jq-ctl dlq replay <job-id> <job-id>", d.dead[1], d.dead[2])
    for job_id in d.dead[1:3]:
        assert (await client.wait(job_id)).state is JobState.SUCCEEDED
    await pages.run("jq-ctl dlq discard <job-id> <job-id>", d.dead[3], d.dead[4], answer="y\n")
    for job_id in d.dead[3:5]:
        with pytest.raises(NotFound):
            await client.get(job_id)
    await pages.run("jq-ctl dlq replay --queue q")
    for job_id in (d.dead[0], d.dead[5]):
        assert (await client.wait(job_id)).state is JobState.SUCCEEDED
    succeeded = await pages.run("jq-ctl list --state succeeded --queue q")
    replayed = [d.dead[0], *d.dead[1:3], d.dead[5]]
    assert all("succeeded" in row(succeeded, job_id) for job_id in replayed)
    # A new failure nobody will fix: discard every dead job of the queue
    UPSTREAM.down = True
    hopeless = [(await client.submit("doc.flaky", {}, queue="q", max_attempts=1)).id]
    assert (await client.wait(hopeless[0])).state is JobState.DEAD
    await pages.run("jq-ctl dlq discard --queue q --yes")
    assert (await client.list_dead("q")).jobs == []

    not_run = {c for _, c in COMMANDS} - pages.ran - set(NOT_RUN)
    assert not not_run, f"commands the pages show that this test does not run: {not_run}"
    assert not set(NOT_RUN) - {c for _, c in COMMANDS}, "NOT_RUN names a command no page shows"


@ON_MODULE_LOOP
async def test_the_side_port_curl_commands_answer(deployment: Deployment) -> None:
    """JobqTargetDown: `kubectl port-forward pod/<pod> 18080:http`, then curl the side
    port. kubectl cannot run here: the forward's local end is the server's HTTP port."""
    assert len(CURL) >= 2, CURL
    port = deployment.server.http_port
    for page, command in CURL:
        argv = shlex.split(command.replace("localhost:18080", f"localhost:{port}"))
        done = await asyncio.to_thread(
            subprocess.run, argv, capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 0, f"{page}: `{command}`: {done.stderr}"
        if command.endswith("/metrics"):
            assert "# TYPE jq_job_queue_depth gauge" in done.stdout, done.stdout[:500]
        else:
            assert command.endswith("/healthz"), command
            assert json.loads(done.stdout) == {"status": "ok"}


def sql_blocks() -> list[tuple[str, str]]:
    """(page, statement) for every statement of every ```sql block of the runbooks."""
    found = []
    for page in RUNBOOKS:
        for block in re.findall(r"^ *```sql\n(.*?)^ *```", page.read_text(), re.M | re.S):
            statements = [s.strip() for s in block.split(";")]
            found += [(page.name, s) for s in statements if s]
    return found


def inline_sql() -> list[tuple[str, str]]:
    """(page, statement) for the one-line statements in the text (Fix and Verify steps): an
    inline span ending in `;`. A bare name such as `VACUUM FULL` ("never ... under load")
    is a mention, not a step."""
    found = set()
    for page in RUNBOOKS:
        for statement in re.findall(r"`((?:SELECT|VACUUM) [^`]*;)`", page.read_text()):
            found.add((page.name, statement))
    return sorted(found)


SQL = sql_blocks()
INLINE_SQL = inline_sql()
# docs/runbooks/README.md "Before you start": the read-only role, as the owner makes it.
[READER_ROLE] = re.findall(r"`(CREATE ROLE (\w+) LOGIN [^`]*)`", RUNBOOKS_README.read_text())


def test_the_runbooks_show_sql() -> None:
    # Guards the extraction: a pattern that found nothing would pass the tests below.
    assert len(SQL) >= 25
    assert len({page for page, _ in SQL}) >= 10
    assert len(INLINE_SQL) >= 5


def reader_url(owner_url: str) -> str:
    """A login of the read-only role the pages recommend, made as they say if missing."""
    create_role, role = READER_ROLE
    with psycopg.connect(owner_url, autocommit=True) as owner:
        exists = owner.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
        if exists.fetchone() is None:  # roles are the cluster's, shared by every database
            owner.execute(create_role.replace("<password>", "unused-under-trust-auth"))  # type: ignore[arg-type]
    return owner_url.replace("postgres@", f"{role}@", 1)


def read_only(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url, autocommit=True, options="-c default_transaction_read_only=on")


@ON_MODULE_LOOP
async def test_every_runbook_sql_statement_runs_as_a_read_only_role(
    deployment: Deployment,
) -> None:
    """The pages say "prefer a read-only role for diagnosis", and how to make one: a login in
    PostgreSQL's predefined pg_read_all_data (every table) and pg_monitor (every session in
    pg_stat_activity, pg_stat_statements). Every transaction here is read-only too."""
    url = deployment.database_url
    reader = reader_url(url)
    with psycopg.connect(url, autocommit=True) as owner:
        # DatabaseCpuHigh: "needs CREATE EXTENSION pg_stat_statements once"; the harness
        # preloads the library as RDS does (tests/harness/services.py).
        owner.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    failures = []
    with read_only(reader) as conn:
        for page, statement in SQL:
            try:
                cursor = conn.execute(statement)  # type: ignore[arg-type]
                assert cursor.description is not None, "returned no rows at all"
                cursor.fetchall()
            except (psycopg.Error, AssertionError) as exc:
                failures.append(f"{page}: {statement}\n  -> {exc}")
    assert not failures, "\n".join(failures)


@ON_MODULE_LOOP
async def test_every_inline_statement_does_what_its_step_says(deployment: Deployment) -> None:
    """The Fix steps' writes run as the database owner, each on something real: a runaway
    query to cancel, a transaction to end, a stale replication slot to drop; the Verify
    steps' reads run as the read-only role."""
    url = deployment.database_url
    reader = reader_url(url)
    with psycopg.connect(url, autocommit=True) as owner:
        for page, statement in INLINE_SQL:
            where = f"{page}: {statement}"
            if "pg_cancel_backend" in statement or "pg_terminate_backend" in statement:
                ended = await _against_a_runaway_query(url, owner, statement)
                expected = (
                    psycopg.errors.QueryCanceled
                    if "cancel" in statement
                    else psycopg.OperationalError
                )
                assert isinstance(ended, expected), f"{where}: {ended!r}"
            elif "pg_drop_replication_slot" in statement:
                owner.execute("SELECT pg_create_physical_replication_slot('nobody_reads_it')")
                owner.execute(statement.replace("<slot_name>", "nobody_reads_it"))  # type: ignore[arg-type]
                slots = owner.execute("SELECT slot_name FROM pg_replication_slots").fetchall()
                assert slots == [], where
            elif statement.startswith("VACUUM"):
                owner.execute(statement)  # type: ignore[arg-type]
            else:
                assert "<" not in statement, where
                with read_only(reader) as conn:
                    assert conn.execute(statement).fetchall(), where  # type: ignore[arg-type]


async def _against_a_runaway_query(
    url: str, owner: psycopg.Connection[Any], statement: str
) -> BaseException | None:
    """Run `statement` with <pid> set to a backend busy with a long query; what that query
    then raised."""
    with psycopg.connect(url, autocommit=True) as runaway:
        pid = runaway.info.backend_pid
        query = asyncio.create_task(asyncio.to_thread(runaway.execute, "SELECT pg_sleep(60)"))
        probe = "SELECT wait_event FROM pg_stat_activity WHERE pid = %s"

        async def waiting() -> Any:
            row = owner.execute(probe, [pid]).fetchone()
            return row[0] if row else None

        await until(waiting, "PgSleep")
        [[done]] = owner.execute(statement.replace("<pid>", str(pid))).fetchall()  # type: ignore[arg-type]
        assert done is True, statement
        try:
            await asyncio.wait_for(query, 10)
        except psycopg.Error as exc:
            return exc
        return None
