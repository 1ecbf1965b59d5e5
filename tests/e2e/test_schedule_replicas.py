"""A per-second schedule on 2 jq-server replicas sharing one PostgreSQL, the leader killed
with SIGKILL twice: exactly one job per fire time, none missing, one schedule.fired event
each. Real processes; the schedule is created and read with jq-ctl.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.auth_keys import OPERATOR_KEY
from tests.e2e.conftest import BIN, wait_until
from tests.e2e.replicas import Replicas, Server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]  # 16 s firing, 4 server starts

# Seconds of firing before each kill, and after the last: each phase holds several fires
# (one a second) of the leader of the moment, the most the assertions below need.
PHASE = 5.0


@pytest.fixture
def database_url(pg_databases: Any) -> str:
    return str(pg_databases.create())


@pytest.fixture
def replicas(tmp_path: Path, database_url: str) -> Iterator[Replicas]:
    made = Replicas(tmp_path, database_url)
    try:
        yield made
    finally:
        made.stop()


def ctl(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "jq-ctl"), "--server", server.address, *args],
        env={**os.environ, "JQ_TOKEN": OPERATOR_KEY},
        capture_output=True,
        text=True,
        timeout=60,
    )


def rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql).fetchall()  # type: ignore[arg-type]


def kill_the_leader(replicas: Replicas, name: str) -> float:
    """SIGKILL the leader, start a replacement; seconds until some replica leads again."""
    [leader] = wait_until(lambda: replicas.leaders(), timeout=10, what="one leader")
    killed = time.monotonic()
    leader.kill()  # stays in replicas.servers, whose stop() closes its log
    wait_until(lambda: replicas.leaders(), timeout=15, what="a new leader")
    took_over = time.monotonic() - killed
    replicas.start_server(name)
    return took_over


def test_a_schedule_fires_once_per_fire_time_across_leader_kills(
    replicas: Replicas, database_url: str
) -> None:
    # Given two replicas and a schedule every second (overlap allowed: no run is skipped)
    a = replicas.start_server("a")
    replicas.start_server("b")
    created = ctl(
        a, "schedules", "create", "tick", "--every", "1s", "--type", "replicas.noop",
        "--payload", '{"n": 1}', "--queue", "sched", "--overlap", "allow",
        "--catch-up-window", "1m", "--json",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    schedule_id = json.loads(created.stdout)["id"]

    # When it fires for ~16 s while the leader is SIGKILLed twice
    time.sleep(PHASE)
    takeovers = [kill_the_leader(replicas, "c")]
    time.sleep(PHASE)
    takeovers.append(kill_the_leader(replicas, "d"))
    time.sleep(PHASE)
    survivor = replicas.servers[-1]  # "d", started after the last kill
    paused = ctl(survivor, "schedules", "pause", "tick")
    assert paused.returncode == 0, paused.stderr
    time.sleep(1.0)  # a fire the leader had in hand when the pause landed is recorded

    # Then exactly one job per fire time, by idempotency key
    keys = rows(
        database_url,
        "SELECT idempotency_key, count(*) FROM jobs WHERE idempotency_key LIKE 'schedule:%'"
        " GROUP BY 1 ORDER BY 1",
    )
    assert keys and all(n == 1 for _, n in keys)
    # and every fire time from the first to the last has its submitted run and its job:
    # the outages (about a second) are far inside the one-minute catch-up window
    runs = rows(
        database_url,
        "SELECT fire_at, outcome, job_id FROM schedule_runs"
        f" WHERE schedule_id = '{schedule_id}' AND NOT manual ORDER BY fire_at",
    )
    fires = [r[0] for r in runs]
    assert all(outcome == "submitted" for _, outcome, _ in runs)
    assert [(b - a) for a, b in itertools.pairwise(fires)] == [dt.timedelta(seconds=1)] * (
        len(fires) - 1
    )
    assert len(fires) >= 3 * PHASE - 3
    assert len(keys) == len(fires)
    # and one schedule.fired event in the outbox per job
    events = rows(
        database_url,
        "SELECT job_id, count(*) FROM job_events WHERE kind = 'schedule_fired' GROUP BY 1",
    )
    assert sorted(str(j) for j, _ in events) == sorted(str(j) for _, _, j in runs)
    assert all(n == 1 for _, n in events)
    # And jq-ctl shows the schedule's last runs
    shown = ctl(survivor, "schedules", "get", "tick")
    assert shown.returncode == 0 and "last runs" in shown.stdout
    assert str(runs[-1][2]) in shown.stdout
    lateness = rows(
        database_url,
        "SELECT max(j.created_at - r.fire_at) FROM schedule_runs r JOIN jobs j ON j.id = r.job_id"
        f" WHERE r.schedule_id = '{schedule_id}'",
    )[0][0]
    print(
        f"{len(fires)} fire times, one job each; leader takeover after "
        f"{', '.join(f'{t:.2f}s' for t in takeovers)}; latest submission {lateness} late"
    )
