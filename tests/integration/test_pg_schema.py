"""Applying every PostgreSQL migration gives exactly the committed schema snapshot.

After changing migrations/postgres/, regenerate the snapshot with
    JQ_UPDATE_SCHEMA_SNAPSHOT=1 .venv/bin/python -m pytest tests/integration/test_pg_schema.py
and review its diff like any other code.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from tests.harness.services import PG_BIN

SNAPSHOT = Path(__file__).resolve().parents[2] / "migrations" / "snapshots" / "postgres.sql"


def normalised_dump(url: str) -> str:
    dump = subprocess.run(
        [
            str(PG_BIN / "pg_dump"),
            "--schema-only",
            "--no-owner",
            "--no-privileges",
            "--exclude-table=_yoyo*",
            "--exclude-table=yoyo*",
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    lines = []
    for line in dump.splitlines():
        # \restrict lines carry a random key (pg_dump 15.14+); SET lines are session noise.
        skipped = ("--", "SET ", "SELECT pg_catalog.set_config", "\\restrict", "\\unrestrict")
        if line.startswith(skipped) or not line.strip():
            continue
        lines.append(line.rstrip())
    return "\n".join(lines) + "\n"


def test_migrations_produce_the_committed_schema(pg_databases) -> None:
    actual = normalised_dump(pg_databases.create())
    assert "_yoyo" not in actual and "yoyo_lock" not in actual
    if os.environ.get("JQ_UPDATE_SCHEMA_SNAPSHOT"):
        SNAPSHOT.write_text(actual)
    assert actual == SNAPSHOT.read_text(), (
        "migrations/postgres/ no longer produce migrations/snapshots/postgres.sql; if "
        "intended, regenerate it (see this module's docstring) and review the diff"
    )


def test_the_hot_queries_have_their_indexes(pg_databases) -> None:
    schema = SNAPSHOT.read_text()
    for index in (
        "jobs_leasable",
        "jobs_running_lease",
        "jobs_scheduled",
        "jobs_state",
        "jobs_priority",
        "jobs_created_at",
        "jobs_worker_id",
        "jobs_finished",
        "job_events_unpublished",
    ):
        assert re.search(rf"CREATE (UNIQUE )?INDEX {index} ON", schema), index
    assert re.search(r"INDEX jobs_leasable ON public\.jobs .* WHERE \(state = 'queued'", schema)
