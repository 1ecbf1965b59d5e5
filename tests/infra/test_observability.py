"""Alarms page through one topic and each names its runbook."""

from __future__ import annotations

import re

from aws_cdk.assertions import Match
from jobq_infra_testing import REPO_ROOT, Synth, cdk_context

from infra.app import RUNBOOK_CONTEXT_KEY

RUNBOOKS_DIR = REPO_ROOT / "docs" / "runbooks"
RUNBOOK_SECTIONS = ("## What it means", "## Impact", "## Diagnose", "## Fix", "## Verify")
_RUNBOOK_LINK = re.compile(r"Runbook: (?P<base>\S+)/docs/runbooks/(?P<page>[A-Za-z0-9]+)\.md$")
# A row of the "CloudWatch alarms" table in docs/runbooks/README.md:
# | `AlarmName` | ... | [Page](./Page.md) |
_INDEX_ROW = re.compile(r"^\|\s*`?([A-Za-z]+)`?\s*\|.*\]\(\./([A-Za-z0-9]+)\.md\)\s*\|\s*$")


def cloudwatch_alarm_pages() -> dict[str, str]:
    """Alarm name -> runbook page, from the "CloudWatch alarms" section of the runbook index."""
    text = (RUNBOOKS_DIR / "README.md").read_text()
    section = text.split("\n## CloudWatch alarms\n", 1)[1].split("\n## ", 1)[0]
    return dict(m.groups() for line in section.splitlines() if (m := _INDEX_ROW.match(line)))


def alarm_family(name: str) -> str:
    """RedisMemoryHigh-0001-002 -> RedisMemoryHigh: one alarm per node or broker, one page."""
    return re.sub(r"(-[0-9]+)+$", "", name)


def _alarm_runbooks(synth: Synth) -> list[tuple[str, str, str]]:
    """(alarm name without the environment prefix, linked page, description) for every alarm."""
    found = []
    for alarm in synth.template("observability").find_resources("AWS::CloudWatch::Alarm").values():
        props = alarm["Properties"]
        match = _RUNBOOK_LINK.search(props["AlarmDescription"])
        assert match, f"{props['AlarmName']} names no runbook: {props['AlarmDescription']}"
        found.append(
            (
                alarm_family(props["AlarmName"].removeprefix(f"{synth.config.prefix}-")),
                match["page"],
                props["AlarmDescription"],
            )
        )
    return found


def test_alarm_topic_is_encrypted(synth: Synth) -> None:
    synth.template("observability").has_resource_properties(
        "AWS::SNS::Topic",
        {"TopicName": f"{synth.config.prefix}-alarms", "KmsMasterKeyId": Match.any_value()},
    )


def test_every_alarm_notifies_the_topic_and_names_its_runbook(synth: Synth) -> None:
    alarms = synth.template("observability").find_resources("AWS::CloudWatch::Alarm")
    assert len(alarms) >= 5
    for alarm in alarms.values():
        props = alarm["Properties"]
        alert = alarm_family(props["AlarmName"].removeprefix(f"{synth.config.prefix}-"))
        assert re.fullmatch(r"[A-Z][A-Za-z]+", alert), props["AlarmName"]
        assert _RUNBOOK_LINK.search(props["AlarmDescription"]), props["AlarmDescription"]
        assert props["AlarmActions"], f"{alert} pages no one"


def test_every_alarm_links_a_runbook_page_that_exists(synth: Synth) -> None:
    """The link in each alarm's description points at a real page under the configured
    base URL, the page has the standard sections, and docs/runbooks/README.md lists the
    alarm with that same page (tests/ops relies on that list)."""
    base = cdk_context()[RUNBOOK_CONTEXT_KEY].rstrip("/")
    listed = cloudwatch_alarm_pages()
    for name, page, description in _alarm_runbooks(synth):
        match = _RUNBOOK_LINK.search(description)
        assert match and match["base"] == base, f"{name}: {description}"
        path = RUNBOOKS_DIR / f"{page}.md"
        assert path.is_file(), (
            f"alarm {name} links {path.relative_to(REPO_ROOT)}, which does not exist"
        )
        text = path.read_text()
        missing = [section for section in RUNBOOK_SECTIONS if section not in text]
        assert not missing, f"{path.name} lacks sections {missing}"
        assert listed.get(name) == page, (
            f"docs/runbooks/README.md lists {name} -> {listed.get(name)}, the alarm links {page}"
        )


def test_runbook_index_lists_only_alarms_some_environment_has(synths: dict[str, Synth]) -> None:
    synthesized = {name for synth in synths.values() for name, _, _ in _alarm_runbooks(synth)}
    assert set(cloudwatch_alarm_pages()) == synthesized


def test_every_alarm_treats_missing_data_as_breaching(synth: Synth) -> None:
    # AWS publishes these every period: silence is a wrong dimension or a lost resource.
    for alarm in synth.template("observability").find_resources("AWS::CloudWatch::Alarm").values():
        props = alarm["Properties"]
        assert props["TreatMissingData"] == "breaching", props["AlarmName"]


def test_no_cloudwatch_alarm_reads_a_namespace_nothing_publishes(synth: Synth) -> None:
    """jq_* metrics stay in Prometheus (ADR 0012): an alarm on them in CloudWatch would
    never receive data."""
    for alarm in synth.template("observability").find_resources("AWS::CloudWatch::Alarm").values():
        assert alarm["Properties"]["Namespace"].startswith("AWS/"), alarm["Properties"]["AlarmName"]


def test_application_log_groups_and_dashboard(synth: Synth) -> None:
    obs = synth.template("observability")
    for component in ("jq-server", "jq-worker", "jq-result-processor"):
        obs.has_resource_properties(
            "AWS::Logs::LogGroup", {"LogGroupName": f"/jobq/{synth.config.name}/{component}"}
        )
    obs.has_resource_properties(
        "AWS::CloudWatch::Dashboard", {"DashboardName": f"{synth.config.prefix}-overview"}
    )
