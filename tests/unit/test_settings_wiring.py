"""Every JQ_ name that the containers, the CDK app, the deploy guide and the runbooks set or
show is one a jobq process reads (jobq.config.known_variables): a name the settings do not
know would stop the process at start (or, before, would have been silently ignored)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from jobq.config import known_variables

ROOT = Path(__file__).resolve().parents[2]
NAME = re.compile(r"\bJQ_[A-Z0-9_]*[A-Z0-9]\b")
PLACES = [
    *sorted((ROOT / "docker").rglob("*")),
    *sorted((ROOT / "infra").rglob("*.py")),
    ROOT / "docs" / "deploy.md",
    *sorted((ROOT / "docs" / "runbooks").glob("*.md")),
    ROOT / "scripts" / "run.sh",
    *sorted((ROOT / "benchmarks").glob("*.py")),
]


@pytest.mark.parametrize(
    "path", [p for p in PLACES if p.is_file()], ids=lambda p: str(p.relative_to(ROOT))
)
def test_every_jq_name_set_or_shown_is_a_known_setting(path: Path) -> None:
    unknown = sorted(set(NAME.findall(path.read_text(errors="replace"))) - known_variables())
    assert unknown == [], f"{path.relative_to(ROOT)} names settings no process reads: {unknown}"


def test_the_places_are_there() -> None:
    assert (ROOT / "docker" / "compose.yaml") in PLACES
    assert (ROOT / "infra" / "k8s" / "workloads.py") in PLACES
