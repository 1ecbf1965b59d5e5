"""The README's "Schedules" commands, run as written against a real jq-server with jq-ctl,
and what they leave behind checked."""

from __future__ import annotations

import datetime as dt
import shlex
from pathlib import Path

import pytest

from tests.e2e.conftest import Cluster, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]  # each jq-ctl is a process

README = Path(__file__).parents[2] / "README.md"


def readme_commands() -> list[list[str]]:
    section = README.read_text().split("## Schedules\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [shlex.split(line, comments=True)[1:] for line in block.splitlines() if line]


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_the_readme_schedule_commands_run_as_written(cluster: Cluster) -> None:
    cluster.start_server()
    commands = readme_commands()
    assert [c[1] for c in commands] == [
        "create", "create", "list", "get", "update", "trigger", "pause", "resume", "delete"
    ]  # fmt: skip
    outputs = {}
    for args in commands:
        result = cluster.ctl(*args)
        assert result.returncode == 0, (args, result.stderr)
        outputs[(args[1], args[2] if len(args) > 2 else "")] = result.stdout
    assert "next fire times:" in outputs[("get", "nightly-report")]
    # What the commands left: nightly-report in Berlin time, its manual run's job queued
    nightly = cluster.ctl_json("schedules", "get", "nightly-report")
    schedule = nightly["schedule"]
    assert schedule["cron"] == "30 2 * * *" and schedule["time_zone"] == "Europe/Berlin"
    fire = dt.datetime.fromisoformat(nightly["next_fire_times"][0])
    assert fire.astimezone(dt.timezone(dt.timedelta(hours=1))).hour in (2, 3)  # CET or DST day
    [run] = nightly["recent_runs"]
    assert run["manual"] and run["outcome"] == "submitted"
    job = cluster.ctl_json("get", run["job_id"])
    assert job["type"] == "report.build" and job["payload"] == {"full": True}
    names = [s["name"] for s in cluster.ctl_json("schedules", "list")]
    assert names == ["nightly-report"]  # heartbeat deleted
    # A schedule fires on its own: every second, through the server's own leader loop
    assert (
        cluster.ctl("schedules", "create", "fast", "--every", "1s", "--type", "echo").returncode
        == 0
    )
    wait_until(
        lambda: cluster.ctl_json("schedules", "get", "fast")["recent_runs"],
        timeout=15,
        what="the schedule's first run",
    )
