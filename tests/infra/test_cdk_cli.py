"""The CDK CLI is pinned in the repository and runs the project's own interpreter."""

from __future__ import annotations

import json
import os
import re
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


LAYERS = ("network", "data", "observability", "platform", "application")
# The context keys the app reads (infra/app.py) besides cdk.json's own.
CONTEXT_KEYS = {"env", "image-tag"}


def _doc_commands(tool: str) -> list[list[str]]:
    text = (REPO_ROOT / "docs" / "deploy.md").read_text()
    blocks = re.findall(r"```(?:bash|sh)\n(.*?)```", text, flags=re.S)
    found = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            if line.startswith(tool + " "):
                found.append(shlex.split(line))
    return found


def _runbook_commands(tool: str, environments: list[str]) -> list[list[str]]:
    """The runbooks' `tool ...` commands, once for each environment `$JQ_ENV` may name."""
    from tests.ops.doc_commands import RUNBOOKS, shown_commands

    return [
        shlex.split(command.replace("$JQ_ENV", env))
        for _, command in shown_commands(tool, RUNBOOKS)
        for env in environments
    ]


def test_the_cdk_commands_in_deploy_md_name_real_environments_stacks_and_context() -> None:
    """What `cdk deploy` in docs/deploy.md and the runbooks selects exists: the environments
    infra/config.py defines, the stacks infra/app.py names (the synth above writes them),
    context keys the app reads. Deploying needs an account, so this is as far as a test
    here goes."""
    from infra.config import ENVIRONMENTS

    commands = _doc_commands("cdk") + _runbook_commands("cdk", sorted(ENVIRONMENTS))
    assert any("jobq-prod-data" in c for c in commands), "the runbooks' cdk commands"
    assert any(c[1] == "deploy" for c in commands), commands
    for command in commands:
        assert command[1] in {"bootstrap", "deploy", "synth", "diff"}, command
        envs = set()
        for i, token in enumerate(command):
            if token == "-c":
                key, _, value = command[i + 1].partition("=")
                assert key in CONTEXT_KEYS, command
                if key == "env":
                    envs.add(value)
                    assert value in ENVIRONMENTS, command
        stacks = [t for t in command[2:] if t.startswith("jobq-")]
        for stack in stacks:
            env, _, layer = stack.removeprefix("jobq-").partition("-")
            assert layer in LAYERS and env in envs, f"{stack}: no such stack for {envs}"
        if command[1] == "deploy":
            assert stacks or "--all" in command, command


def test_the_venv_deploy_md_sets_up_is_the_one_cdk_json_runs() -> None:
    app = json.loads((REPO_ROOT / "cdk.json").read_text())["app"]
    made = [c for c in _doc_commands("make")] + [c for c in _doc_commands("python3") if "venv" in c]
    assert made, "docs/deploy.md no longer shows how to make the venv"
    for command in made:
        target = command[-1] if command[0] == "python3" else command[1]
        assert target.split("/")[0] == shlex.split(app)[0].split("/")[0], command


def test_the_image_commands_in_deploy_md_build_and_push_what_the_stacks_pull() -> None:
    """There is no Docker engine here: the `docker` commands of docs/deploy.md build from
    Dockerfiles that exist (linted in test_docker.py) and push every image they build, to
    the ECR repositories the platform stack makes."""
    from infra.components.registry import IMAGE_NAMES

    commands = [
        shlex.split(part)
        for command in _doc_commands("docker")
        for part in shlex.join(command).split(" '&&' ")
    ]
    builds = [c for c in commands if c[1] == "build"]
    for build in builds:
        assert (REPO_ROOT / build[build.index("-f") + 1]).is_file(), build
        assert build[-1] == ".", f"{build}: the Dockerfiles build from the repository root"
    built = sorted(build[build.index("-t") + 1] for build in builds)
    assert sorted(c[2] for c in commands if c[1] == "push") == built
    assert [tag.removeprefix("$REG/").split(":")[0] for tag in built] == sorted(IMAGE_NAMES)
