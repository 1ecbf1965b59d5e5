"""The code stays typed and linted: mypy (strict, on app/) and ruff pass as part of the tests."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
# Its own cache directory, so a warm run takes seconds and never races an editor's mypy.
MYPY_CACHE = REPO_ROOT / ".mypy_cache" / "test_code_quality"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_mypy_strict_reports_no_errors() -> None:
    # mypy reads files and strictness from pyproject.toml.
    result = run("mypy", "--cache-dir", str(MYPY_CACHE))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "command",
    [("check", "app", "tests"), ("format", "--check", "app", "tests")],
    ids=["ruff check", "ruff format --check"],
)
def test_ruff_finds_nothing_to_change(command: tuple[str, ...]) -> None:
    result = run("ruff", *command)
    assert result.returncode == 0, result.stdout + result.stderr
