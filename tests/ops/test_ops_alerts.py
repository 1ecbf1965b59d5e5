"""Alert rules: promtool accepts them and their unit tests pass, every alert is
documented by a runbook page, and every metric they read is in the contract.

Runbook pages serve two kinds of alert: the Prometheus alerts here, and the
CloudWatch alarms of the CDK observability stack, listed with their pages in the
"CloudWatch alarms" table of docs/runbooks/README.md. tests/infra checks that table
against the synthesized alarms; here it only counts as a link to a page."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from metric_contract import METRICS, base_metric_name
from promql_names import raw_metric_names, recorded_names

ROOT = Path(__file__).resolve().parents[2]
ALERTS_DIR = ROOT / "alerts"
RULE_FILES = sorted(ALERTS_DIR.glob("*.yml"))
RULE_TEST_FILES = sorted((ALERTS_DIR / "tests").glob("*.yml"))
RUNBOOKS_DIR = ROOT / "docs" / "runbooks"
RUNBOOK_URL_PREFIX = "https://github.com/jobq/jobq/blob/main/docs/runbooks/"
SEVERITIES = {"critical", "warning"}
# The dead-man's switch (docs/runbooks/Watchdog.md): fires by design, from no series at all.
ALWAYS_FIRING = {"Watchdog"}
RUNBOOK_SECTIONS = ("## What it means", "## Impact", "## Diagnose", "## Fix", "## Verify")


def _rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules.extend(group["rules"])
    return rules


ALERTS = [rule for rule in _rules() if "alert" in rule]
RECORDS = [rule for rule in _rules() if "record" in rule]
ALERT_IDS = [rule["alert"] for rule in ALERTS]


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        message = "promtool not found: run scripts/install-promtool.sh"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def _run(*args: str) -> None:
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{' '.join(args)}\n{result.stdout}\n{result.stderr}"


def test_there_are_rule_files_and_rule_tests() -> None:
    assert RULE_FILES, "no alerts/*.yml"
    assert RULE_TEST_FILES, "no alerts/tests/*.yml"
    assert ALERTS, "no alerting rules"


def test_promtool_check_rules_accepts_every_rule_file() -> None:
    _run(_promtool(), "check", "rules", *map(str, RULE_FILES))


def test_promtool_rule_unit_tests_pass() -> None:
    _run(_promtool(), "test", "rules", *map(str, RULE_TEST_FILES))


def test_alert_names_are_unique() -> None:
    assert len(ALERT_IDS) == len(set(ALERT_IDS))


@pytest.mark.parametrize("alert", ALERTS, ids=ALERT_IDS)
def test_alert_has_severity_summary_description_and_runbook(alert: dict[str, Any]) -> None:
    assert alert.get("labels", {}).get("severity") in SEVERITIES
    annotations = alert.get("annotations", {})
    assert annotations.get("summary", "").strip()
    assert annotations.get("description", "").strip()
    assert annotations.get("runbook_url") == f"{RUNBOOK_URL_PREFIX}{alert['alert']}.md"


@pytest.mark.parametrize("alert", ALERTS, ids=ALERT_IDS)
def test_alert_runbook_page_exists_with_every_section(alert: dict[str, Any]) -> None:
    page = RUNBOOKS_DIR / f"{alert['alert']}.md"
    assert page.is_file(), f"missing runbook {page.relative_to(ROOT)}"
    text = page.read_text()
    missing = [section for section in RUNBOOK_SECTIONS if section not in text]
    assert not missing, f"{page.name} lacks sections {missing}"


def _index_section(title: str) -> str:
    text = (RUNBOOKS_DIR / "README.md").read_text()
    assert f"\n## {title}\n" in text, f"docs/runbooks/README.md has no '## {title}' section"
    return text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def _linked_pages(markdown: str) -> set[str]:
    return set(re.findall(r"\]\(\./?([A-Za-z0-9]+)\.md\)", markdown))


def cloudwatch_alarm_pages() -> dict[str, str]:
    """Alarm name -> page, from the index's "CloudWatch alarms" table."""
    row = re.compile(r"^\|\s*`?([A-Za-z]+)`?\s*\|.*\]\(\./([A-Za-z0-9]+)\.md\)\s*\|\s*$")
    lines = _index_section("CloudWatch alarms").splitlines()
    return dict(m.groups() for line in lines if (m := row.match(line)))


PAGES = sorted(path.stem for path in RUNBOOKS_DIR.glob("*.md") if path.name != "README.md")


def test_every_runbook_page_is_linked_by_an_alert_or_a_cloudwatch_alarm() -> None:
    linked = set(ALERT_IDS) | set(cloudwatch_alarm_pages().values())
    assert set(PAGES) - linked == set(), "runbook pages no alert or alarm links to"


@pytest.mark.parametrize("page", PAGES)
def test_every_runbook_page_has_every_section(page: str) -> None:
    text = (RUNBOOKS_DIR / f"{page}.md").read_text()
    assert text.startswith(f"# {page}\n"), f"{page}.md should start with '# {page}'"
    missing = [section for section in RUNBOOK_SECTIONS if section not in text]
    assert not missing, f"{page}.md lacks sections {missing}"


def test_runbook_index_links_every_page() -> None:
    index = (RUNBOOKS_DIR / "README.md").read_text()
    assert _linked_pages(index) == set(PAGES)
    assert _linked_pages(_index_section("Prometheus alerts")) == set(ALERT_IDS)


def test_cloudwatch_alarms_share_pages_with_alerts_instead_of_duplicating_them() -> None:
    # An alarm with a page of its own is named like that page; any other alarm
    # links a Prometheus alert's page.
    for alarm, page in cloudwatch_alarm_pages().items():
        assert page == alarm or page in ALERT_IDS, f"{alarm} -> {page}"


def test_a_page_names_only_cloudwatch_alarms_the_index_lists() -> None:
    # The index's table is what tests/infra checks against the synthesized alarms: an alarm
    # a page names beside it (say `jobq-<env>-StoreErrors`) would send the reader looking
    # for one nothing creates.
    listed = set(cloudwatch_alarm_pages())
    for path in RUNBOOKS_DIR.glob("*.md"):
        named = set(re.findall(r"`jobq-<env>-([A-Z][A-Za-z]+)", path.read_text()))  # not topics
        assert named <= listed, f"{path.name} names alarms no stack makes: {named - listed}"


def test_every_alert_has_a_unit_test_where_it_fires_and_one_where_it_does_not() -> None:
    fires: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TEST_FILES:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert set(ALERT_IDS) - fires == set(), "alerts never seen firing in a test"
    assert set(ALERT_IDS) - quiet - ALWAYS_FIRING == set(), (
        "alerts never seen staying quiet in a test"
    )


@pytest.mark.parametrize("rule", _rules(), ids=[r.get("alert") or r["record"] for r in _rules()])
def test_rule_reads_only_contract_metrics_and_defined_recordings(rule: dict[str, Any]) -> None:
    expr = rule["expr"]
    unknown = {base_metric_name(n) for n in raw_metric_names(expr)} - METRICS.keys()
    assert not unknown, f"metrics not in tests/ops/metric_contract.py: {sorted(unknown)}"
    undefined = recorded_names(expr) - {r["record"] for r in RECORDS}
    assert not undefined, f"recorded series no rule defines: {sorted(undefined)}"


def test_every_rule_reads_some_jobq_series() -> None:
    # Guards the name extraction above: a regex that found nothing would pass it.
    for rule in _rules():
        if rule.get("alert") == "JobqTargetDown":
            continue  # reads only Prometheus' own `up`
        if rule.get("alert") in ALWAYS_FIRING:
            assert rule["expr"] == "vector(1)", rule
            continue
        assert raw_metric_names(rule["expr"]) | recorded_names(rule["expr"]), rule
