"""Applying every PostgreSQL migration gives exactly the committed schema snapshot.

After changing migrations/postgres/, regenerate the snapshot with
    JQ_UPDATE_SCHEMA_SNAPSHOT=1 .venv/bin/python -m pytest tests/integration/test_pg_schema.py
and review its diff like any other code.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
from pathlib import Path

import psycopg
import pytest

from jobq.store.postgres import queries as q
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


# The queries an index exists for, and the index that must serve each: with sequential scans
# priced out, a plan that still reads the table whole means the index is gone or no longer
# matches the query (a partial index whose predicate the query does not imply, say).
NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
SERVED_BY = [
    ("jobs_leasable", q.LEASE, {"tenant": "t", "queue": "q", "now": NOW, "types": [],
                                "limit": 10, "worker": "w", "lease_until": NOW}),
    ("jobs_running_lease", q.EXPIRED_LEASES, {"now": NOW, "limit": 10}),
    ("jobs_scheduled", q.PROMOTE, {"now": NOW, "limit": 10}),
    ("jobs_state", q.UNFINISHED_COUNTS, {"tenants": ["t"], "names": ["q"]}),
    ("jobs_state", q.DEAD_OF_QUEUE, {"queue": "q", "tenant": "t"}),
    ("jobs_created_at", q.PAGE.format(where="WHERE " + q.FILTERS["created_after"]),
     {"created_after": NOW, "limit": 100}),
    ("jobs_finished", q.DELETE_FINISHED, {"now": NOW, "limit": 10}),
    ("job_events_unpublished", q.UNPUBLISHED, {"limit": 10}),
    ("job_events_at", q.PRUNE_EVENTS, {"before": NOW, "unpublished": False, "limit": 10}),
]  # fmt: skip


@pytest.mark.parametrize(("index", "query", "params"), SERVED_BY, ids=[s[0] for s in SERVED_BY])
def test_the_hot_queries_are_served_by_their_indexes(
    pg_databases, index: str, query: str, params: dict[str, object]
) -> None:
    with psycopg.connect(pg_databases.create(), autocommit=True) as conn:
        conn.execute("SET enable_seqscan = off")
        plan = "\n".join(row[0] for row in conn.execute("EXPLAIN " + query, params))
    assert re.search(rf"Index (Only )?Scan (Backward )?(using|on) {index}\b", plan), plan
