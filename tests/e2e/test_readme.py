"""Every example of the README, run as written against `make run` (scripts/run.sh).

Blocks tagged `python file=NAME` are written to NAME in a fresh directory (with `.venv`
linked, so `.venv/bin/...` reads as in a clone); untagged `python` blocks run as scripts
there; `sh` blocks run in bash with -e and pipefail; `sh background` blocks are started and
left running until the end. Blocks without a tag (diagrams, settings for other services)
are not examples of `make run`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import wait_until
from tests.e2e.test_run_script import RunScript

REPO = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```$", re.M | re.S)


def readme_blocks() -> list[tuple[str, str, str]]:
    """(language, tag, code) of each fenced block tagged python or sh, in order."""
    text = (REPO / "README.md").read_text()
    return [(m[1], m[2].strip(), m[3]) for m in FENCE.finditer(text) if m[1] in ("python", "sh")]


@pytest.fixture
def make_run(tmp_path: Path) -> Iterator[RunScript]:
    run = RunScript(tmp_path / "run")
    run.tmp.mkdir()
    run.env["JQ_TASKS"] = "jobq.examples"  # what `make run` loads
    run.start_ready()
    try:
        yield run
    finally:
        run.stop_all()


# Every README command in turn, some starting processes of their own: 40 s alone on a quiet
# machine, 80 s and more while the other xdist worker runs a heavy unit beside it.
@pytest.mark.timeout(240)
def test_the_readme_examples_run_as_written(make_run: RunScript, tmp_path: Path) -> None:
    blocks = readme_blocks()
    assert any(tag.startswith("file=") for _, tag, _ in blocks)
    assert sum(lang == "sh" for lang, _, _ in blocks) >= 3
    work = tmp_path / "clone"
    work.mkdir()
    (work / ".venv").symlink_to(REPO / ".venv")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("JQ_") and key != "PYTHONPATH"
    }
    # The shell of a user next to `make run`; only the port differs from the default.
    env |= {"JQ_SERVER_ADDRESS": make_run.address, "PYTHONUNBUFFERED": "1"}
    background: list[subprocess.Popen[bytes]] = []
    try:
        for number, (language, tag, code) in enumerate(blocks):
            where = f"README block {number} ({language} {tag})"
            if tag.startswith("file="):
                (work / tag.removeprefix("file=")).write_text(code)
            elif language == "python":
                script = work / f"block_{number}.py"
                script.write_text(code)
                ran = subprocess.run(
                    [str(work / ".venv/bin/python"), script.name],
                    cwd=work,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                assert ran.returncode == 0, f"{where}:\n{ran.stdout}\n{ran.stderr}"
                if "send_email" in code:
                    assert "{'sent': True}" in ran.stdout, ran.stdout
            elif tag == "background":
                with (work / f"block_{number}.log").open("wb") as log:
                    background.append(
                        subprocess.Popen(
                            ["bash", "-c", code],
                            cwd=work,
                            env=env,
                            stdout=log,
                            stderr=subprocess.STDOUT,
                            start_new_session=True,
                        )
                    )
                _wait_for_worker(work, env, where)
                # At start the worker says which port it took and what it serves.
                started = (work / f"block_{number}.log").read_text()
                assert "jq-worker: HTTP on http://127.0.0.1:" in started, started
                assert "email.send (emails)" in started, started
            else:
                ran = subprocess.run(
                    ["bash", "-euo", "pipefail", "-c", code],
                    cwd=work,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=300,
                    stdin=subprocess.DEVNULL,
                )
                assert ran.returncode == 0, f"{where}:\n{ran.stdout}\n{ran.stderr}"
    finally:
        for proc in background:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)


def _wait_for_worker(work: Path, env: dict[str, str], where: str) -> None:
    """Until a second worker has registered (the one the block started)."""

    def registered() -> bool:
        listed = subprocess.run(
            [str(work / ".venv/bin/jq-ctl"), "workers", "list", "--json"],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if listed.returncode != 0:
            return False
        lines = [json.loads(line) for line in listed.stdout.splitlines() if line.strip()]
        workers = lines[0] if lines and isinstance(lines[0], list) else lines
        return sum(w.get("state") == "active" for w in workers) >= 2

    wait_until(registered, timeout=60, interval=0.5, what=f"the worker of {where}")
