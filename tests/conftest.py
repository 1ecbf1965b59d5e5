"""Shared test helpers. Each suite's own conftest adds its fixtures."""

from __future__ import annotations

import datetime as dt

import pytest

from jobq.core.clock import FixedClock

pytest_plugins = ["tests.harness.kafka"]

T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)

# Under pytest-xdist (`-n 2 --dist loadscope --no-loadscope-reorder`, docs/adr/0027), the units of
# work are chosen here, since xdist's own loadgroup marks do not reach pytest 9's node ids:
# - the files whose tests run outages and kills on a timeline and assert what happens within set
#   times, as one unit, so two of them never run at once and compete for the CPU; and that unit
#   first, so the longest one does not start last;
# - tests/infra as one unit, since its session fixture synthesizes the CDK app (seconds of Node);
# - every other file as one unit, so its module-scoped fixtures start once per run.
FAULT_FILES = (
    "tests/e2e/test_redis_coordination.py",
    "tests/e2e/test_consumer_outage.py",
    "tests/e2e/test_faults.py",
    "tests/e2e/test_replicas.py",
    "tests/e2e/test_schedule_replicas.py",
    "tests/e2e/test_heartbeats_under_load.py",
    "tests/integration/test_events_kafka.py",  # its broker-down test
)


def unit_of(nodeid: str) -> str:
    """The unit of work an xdist worker takes whole (see above)."""
    path = nodeid.split("::", 1)[0]
    if path in FAULT_FILES:
        return "faults"
    return "tests/infra" if path.startswith("tests/infra/") else path


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ByUnit(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return unit_of(nodeid)

    return ByUnit(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if hasattr(config, "workerinput"):  # an xdist worker: the fault unit first (stable sort)
        items.sort(key=lambda item: unit_of(item.nodeid) != "faults")


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture(scope="session")
def pg_server():
    """One PostgreSQL 15 for the whole run; tests get databases of their own in it."""
    from tests.harness.services import postgres_server

    with postgres_server() as server:
        yield server


class PgDatabases:
    """Fresh databases copied from a migrated template: cheap isolation per test."""

    def __init__(self, server) -> None:
        self.server = server
        self.count = 0
        self._template = ""

    def template(self) -> str:
        if not self._template:
            from jobq.store.migrations import apply_migrations, migrations_dir
            from jobq.store.postgres import yoyo_url

            self.server.execute("CREATE DATABASE jobq_template")
            url = yoyo_url(self.server.url("jobq_template"))
            apply_migrations(url, migrations_dir("postgres"))
            self._template = "jobq_template"
        return self._template

    def create(self) -> str:
        self.count += 1
        name = f"jobq_test_{self.count}"
        self.server.execute(f"CREATE DATABASE {name} TEMPLATE {self.template()}")
        return self.server.url(name)


@pytest.fixture(scope="session")
def pg_databases(pg_server) -> PgDatabases:
    return PgDatabases(pg_server)


@pytest.fixture(scope="session")
def pg_bouncer(pg_server):
    """One PgBouncer (transaction pooling) in front of `pg_server`, for every database in it."""
    from tests.harness.services import pgbouncer

    with pgbouncer(pg_server) as bouncer:
        yield bouncer


@pytest.fixture(scope="session")
def redis_server():
    """One standalone redis-server (AUTH on) for the run; tests flush it before use."""
    from tests.harness.redis import redis_server as start

    with start() as server:
        yield server


@pytest.fixture(scope="session")
def redis_cluster():
    """One 3-master Redis cluster (no replicas) for the run."""
    from tests.harness.redis import redis_cluster as start

    with start(replicas=0) as cluster:
        yield cluster
