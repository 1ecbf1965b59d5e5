"""Alarms that page through one SNS topic, each naming the runbook that handles it."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_sns as sns
from constructs import Construct

RUNBOOK_DIR = "docs/runbooks"


def runbook_path(page: str) -> str:
    return f"{RUNBOOK_DIR}/{page}.md"


@dataclass(frozen=True)
class AlertSpec:
    """One alarm: its name, the runbook page that handles it, what it watches and when it fires.

    ``runbook`` is the page's file name in docs/runbooks without ``.md``. An alarm
    that means the same as a Prometheus alert links that alert's page (one page
    per condition); an AWS-only alarm has a page of its own, named like the alarm.
    docs/runbooks/README.md lists every alarm and its page; tests/infra checks
    both against the synthesized templates.
    """

    name: str
    runbook: str
    summary: str
    metric: cloudwatch.IMetric
    threshold: float
    comparison: cloudwatch.ComparisonOperator = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD
    evaluation_periods: int = 3
    # AWS publishes these metrics every period while the resource exists: no data means the
    # dimensions are wrong or the resource is gone, both worth a look.
    treat_missing_data: cloudwatch.TreatMissingData = cloudwatch.TreatMissingData.BREACHING
    # The CloudWatch name after the environment prefix, when it differs from the construct id.
    alarm_name: str = ""


class RunbookAlarm(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, spec: AlertSpec, prefix: str, topic: sns.ITopic, runbook_base_url: str
    ) -> None:
        super().__init__(scope, construct_id)
        runbook = f"{runbook_base_url.rstrip('/')}/{runbook_path(spec.runbook)}"
        self.alarm = cloudwatch.Alarm(
            self,
            "Alarm",
            alarm_name=f"{prefix}-{spec.alarm_name or spec.name}",
            alarm_description=f"{spec.summary} Runbook: {runbook}",
            metric=spec.metric,
            threshold=spec.threshold,
            comparison_operator=spec.comparison,
            evaluation_periods=spec.evaluation_periods,
            treat_missing_data=spec.treat_missing_data,
        )
        self.alarm.add_alarm_action(actions.SnsAction(topic))
        self.alarm.add_ok_action(actions.SnsAction(topic))
