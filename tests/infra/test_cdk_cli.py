"""The CDK CLI is pinned in the repository and runs the project's own interpreter."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest
from jobq_infra_testing import REPO_ROOT


def test_the_cli_is_pinned_exactly() -> None:
    package = json.loads((REPO_ROOT / "package.json").read_text())
    version = package["devDependencies"]["aws-cdk"]
    assert version[0].isdigit() and all(part.isdigit() for part in version.split(".")), version


@pytest.mark.timeout(600)
def test_cdk_json_app_runs_the_venv_and_writes_the_assembly(tmp_path: Path) -> None:
    """Runs cdk.json's "app" exactly as the CLI does: from the repository root, with the
    output directory and context in CDK_OUTDIR / CDK_CONTEXT_JSON."""
    app = json.loads((REPO_ROOT / "cdk.json").read_text())
    argv = shlex.split(app["app"])
    assert argv[0] == ".venv/bin/python", (
        "cdk.json must run the project's venv, not whatever python is on PATH"
    )
    context = {**app["context"], "env": "dev"}
    env = {
        "PATH": "/usr/bin:/bin",  # no venv on PATH: only cdk.json's own path may find it
        "HOME": os.environ.get("HOME", "/tmp"),
        "CDK_OUTDIR": str(tmp_path),
        "CDK_CONTEXT_JSON": json.dumps(context),
    }
    result = subprocess.run(
        argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "manifest.json").is_file()
    assert {p.name for p in tmp_path.glob("*.template.json")} >= {
        f"jobq-dev-{layer}.template.json"
        for layer in ("network", "data", "observability", "platform", "application")
    }
