"""Alarms page through one topic and each names its runbook."""

from __future__ import annotations

import re

from aws_cdk.assertions import Match

from jobq_infra_testing import Synth


def test_alarm_topic_is_encrypted(synth: Synth) -> None:
    synth.template("observability").has_resource_properties(
        "AWS::SNS::Topic", {"TopicName": f"{synth.config.prefix}-alarms", "KmsMasterKeyId": Match.any_value()}
    )


def test_every_alarm_notifies_the_topic_and_names_its_runbook(synth: Synth) -> None:
    alarms = synth.template("observability").find_resources("AWS::CloudWatch::Alarm")
    assert len(alarms) >= 8
    for alarm in alarms.values():
        props = alarm["Properties"]
        alert = props["AlarmName"].removeprefix(f"{synth.config.prefix}-")
        assert re.fullmatch(r"[A-Z][A-Za-z]+", alert), props["AlarmName"]
        assert f"docs/runbooks/{alert}.md" in props["AlarmDescription"]
        assert props["AlarmActions"], f"{alert} pages no one"


def test_queue_depth_and_outbox_alarms_exist(synth: Synth) -> None:
    obs = synth.template("observability")
    for metric in ("jq_job_queue_depth", "jq_outbox_backlog", "jq_dead_letters_total", "jq_store_errors_total"):
        obs.has_resource_properties(
            "AWS::CloudWatch::Alarm",
            {"MetricName": metric, "Namespace": "JobQ", "Dimensions": [{"Name": "Environment", "Value": synth.config.name}]},
        )


def test_application_log_groups_and_dashboard(synth: Synth) -> None:
    obs = synth.template("observability")
    for component in ("jq-server", "jq-worker"):
        obs.has_resource_properties("AWS::Logs::LogGroup", {"LogGroupName": f"/jobq/{synth.config.name}/{component}"})
    obs.has_resource_properties("AWS::CloudWatch::Dashboard", {"DashboardName": f"{synth.config.prefix}-overview"})
