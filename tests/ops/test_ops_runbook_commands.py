"""The commands in docs/deploy.md and docs/runbooks match the real CLI and deployment.

Every ``jq-ctl ...`` command on those pages is run with ``--help`` appended: the CLI
resolves the subcommand path and parses the options before it prints help, so a wrong
path ("No such command") or a wrong option ("No such option") exits non-zero, and nothing
contacts a server. The usage line must name the same path. jq-ctl runs in this process
(`ctl_runner`). That each command also does what its page says against a real server is
`test_doc_commands_run.py`.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import Result
from ctl_runner import run_ctl
from doc_commands import RUNBOOKS, shown_commands
from metric_contract import METRICS, base_metric_name
from promql_names import raw_metric_names

from tests.harness.services import missing

# The runbooks set JQ_ENV; docs/deploy.md names the environment <env>.
NAMESPACES = {"job-queue-$JQ_ENV", "job-queue-<env>"}
DEPLOYMENTS = {"jq-server", "jq-worker", "jq-pgbouncer", "jq-result-processor"}

JQ_CTL = shown_commands("jq-ctl")
KUBECTL = shown_commands("kubectl")


def _cli(*args: str) -> Result:
    return run_ctl(shlex.join(["jq-ctl", *args]))


def _path(tokens: list[str]) -> list[str]:
    """The leading words of a command that name (sub)commands, not arguments."""
    path: list[str] = []
    for token in tokens:
        if not re.fullmatch(r"[a-z][a-z-]*", token):
            break
        path.append(token)
    return path


def test_runbooks_use_jq_ctl_and_kubectl() -> None:
    # Guards the extraction: a regex that found nothing would pass every test below.
    assert len(JQ_CTL) >= 20
    assert len(KUBECTL) >= 10


def test_a_wrong_command_path_or_option_fails_the_check() -> None:
    assert _cli("queues", "stats", "--help").exit_code == 0
    assert _cli("queues", "nope", "--help").exit_code != 0
    assert _cli("nope", "--help").exit_code != 0
    assert _cli("dlq", "replay", "--bogus", "--help").exit_code != 0


@pytest.mark.parametrize(("page", "command"), JQ_CTL, ids=[f"{p}: {c}" for p, c in JQ_CTL])
def test_jq_ctl_command_exists_with_its_options(page: str, command: str) -> None:
    tokens = shlex.split(command)[1:]
    result = _cli(*tokens, "--help")
    assert result.exit_code == 0, f"{page}: `{command}`\n{result.stdout}{result.stderr}"
    usage = re.search(r"Usage: jq-ctl ([a-z -]*?)\s*\[OPTIONS\]", result.stdout)
    assert usage, result.stdout
    # Words after the real path are arguments (queue names, ids): the path the CLI
    # resolved must be a prefix of the words written.
    resolved = usage.group(1).split()
    assert _path(tokens)[: len(resolved)] == resolved, f"{page}: `{command}` resolves to {resolved}"


@pytest.mark.parametrize(("page", "command"), KUBECTL, ids=[f"{p}: {c}" for p, c in KUBECTL])
def test_kubectl_commands_use_the_deployed_namespace_and_labels(page: str, command: str) -> None:
    tokens = shlex.split(command, posix=False)
    assert "-n" in tokens and tokens[tokens.index("-n") + 1] in NAMESPACES, (
        f"{page}: `{command}` should run in -n job-queue-$JQ_ENV "
        "(infra/config.py EnvironmentConfig.namespace)"
    )
    assert not re.search(r"-l\s+'?app[=\s]", command), (
        f"{page}: `{command}`: pods are labelled app.kubernetes.io/name=<deployment> "
        "(infra/k8s/workloads.py)"
    )
    for label in re.findall(r"app\.kubernetes\.io/name=([\w-]+)", command):
        assert label in DEPLOYMENTS, f"{page}: `{command}`: no Deployment {label}"
    for name in re.findall(r"deployment[/ ]([\w-]+)", command):
        assert name in DEPLOYMENTS | {"<job>"}, f"{page}: `{command}`: no Deployment {name}"


PROMQL = [
    (page.name, query.strip())
    for page in RUNBOOKS
    for query in re.findall(r"^ *```promql\n(.*?)^ *```", page.read_text(), re.M | re.S)
]


def test_runbook_queries_read_contract_metrics_and_parse_as_promql(tmp_path: Path) -> None:
    """A ```promql block of a runbook is pasted into Prometheus as it stands: it must parse
    and read only metrics jobq exports (tests/ops/metric_contract.py). As for the
    dashboards, promtool parses each query as a recording rule."""
    assert len(PROMQL) >= 4, PROMQL
    for page, query in PROMQL:
        names = {base_metric_name(name) for name in raw_metric_names(query)}
        assert names and names <= METRICS.keys(), f"{page}: {query} reads {sorted(names)}"
    promtool = shutil.which("promtool")
    if promtool is None:
        missing("promtool (scripts/install-promtool.sh)")
    rules = [{"record": f"runbook_query_{i}", "expr": q} for i, (_, q) in enumerate(PROMQL)]
    rule_file = tmp_path / "runbook_queries.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "runbooks", "rules": rules}]}))
    argv = [str(promtool), "check", "rules", str(rule_file)]
    checked = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
