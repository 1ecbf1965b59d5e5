"""Alarms that receive data and page someone (ADR 0012), read from the synthesized stacks:
Prometheus loads alerts/ and scrapes each workload under the job name the rules select,
Alertmanager publishes to the topic whose subscribers are the pagers, Fluent Bit writes
every jobq pod's lines to a log group that exists; the CloudWatch alarms use the
dimensions AWS documents for each metric."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml
from jobq_infra_testing import REPO_ROOT, Synth, _flatten, helm_charts, manifest_objects

from infra.components.monitoring import ALERTMANAGER_SA, FLUENT_BIT_SA, RULES_FILE, SCRAPED

RULES = yaml.safe_load((REPO_ROOT / "alerts" / "jobq.rules.yml").read_text())

# The dimensions each AWS metric is published with, from the services' documentation:
# RDS https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/dimensions.html (DBInstanceIdentifier);
# ElastiCache https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/CacheMetrics.HostLevel.html
# and CacheMetrics.Redis.html (per node: CacheClusterId, optionally CacheNodeId);
# MSK https://docs.aws.amazon.com/msk/latest/developerguide/metrics-details.html
# (KafkaDataLogsDiskUsed at DEFAULT level: "Cluster Name", "Broker ID");
# SNS https://docs.aws.amazon.com/sns/latest/dg/sns-monitoring-using-cloudwatch.html (TopicName).
PUBLISHED_DIMENSIONS = {
    ("AWS/RDS", "CPUUtilization"): [{"DBInstanceIdentifier"}],
    ("AWS/RDS", "FreeStorageSpace"): [{"DBInstanceIdentifier"}],
    ("AWS/ElastiCache", "DatabaseMemoryUsagePercentage"): [
        {"CacheClusterId"},
        {"CacheClusterId", "CacheNodeId"},
    ],
    ("AWS/Kafka", "KafkaDataLogsDiskUsed"): [{"Cluster Name", "Broker ID"}],
    ("AWS/SNS", "NumberOfMessagesPublished"): [{"TopicName"}],
}


def chart_values(synth: Synth, chart: str) -> dict[str, Any]:
    props = helm_charts(synth.raw("platform"))[chart]
    return json.loads(_flatten(props["Values"]))


def test_prometheus_loads_the_repository_rules_unchanged(synth: Synth) -> None:
    values = chart_values(synth, "prometheus")
    assert values["serverFiles"]["alerting_rules.yml"] == RULES
    assert values["alertmanager"]["enabled"] is True


def test_each_workload_is_scraped_as_the_job_the_rules_select(synth: Synth) -> None:
    values = chart_values(synth, "prometheus")
    jobs = {j["job_name"]: j for j in yaml.safe_load(values["extraScrapeConfigs"])}
    assert set(jobs) == set(SCRAPED)
    deployments = {
        o["metadata"]["name"]: o
        for o in manifest_objects(synth.raw("application"))
        if o["kind"] == "Deployment"
    }
    for name, job in jobs.items():
        (sd,) = job["kubernetes_sd_configs"]
        assert sd["namespaces"]["names"] == [synth.config.namespace]
        keep = {
            tuple(r["source_labels"]): r["regex"]
            for r in job["relabel_configs"]
            if r.get("action") == "keep"
        }
        pod = deployments[name]["spec"]["template"]
        assert (
            pod["metadata"]["labels"]["app.kubernetes.io/name"]
            == keep[("__meta_kubernetes_pod_label_app_kubernetes_io_name",)]
        )
        (container,) = pod["spec"]["containers"]
        assert keep[("__meta_kubernetes_pod_container_port_name",)] in {
            p["name"] for p in container["ports"]
        }
        targets = {r.get("target_label") for r in job["relabel_configs"]}
        assert {"namespace", "pod"} <= targets  # KEDA's query and the rules filter on them
    # The job names the rules select on are the scrape jobs.
    selected = set()
    for group in RULES["groups"]:
        for rule in group["rules"]:
            for match in re.findall(r'job=~?"([^"]+)"', rule["expr"]):
                selected |= set(match.split("|"))
    assert selected and selected <= set(SCRAPED)


def test_alertmanager_publishes_every_alert_to_the_pagers_topic(synth: Synth) -> None:
    am = chart_values(synth, "prometheus")["alertmanager"]
    assert am["serviceAccount"]["name"] == ALERTMANAGER_SA
    route = am["config"]["route"]
    # Every alert but the always-firing Watchdog takes the default route to the pagers.
    assert [
        r["matchers"] for r in route.get("routes", []) if r["receiver"] != route["receiver"]
    ] == [['alertname="Watchdog"']]
    (receiver,) = [r for r in am["config"]["receivers"] if r["name"] == route["receiver"]]
    (sns,) = receiver["sns_configs"]
    assert sns["sigv4"]["region"] == synth.stacks.platform.region
    # The topic ARN is the observability stack's topic, imported into the platform stack.
    raw = json.dumps(helm_charts(synth.raw("platform"))["prometheus"]["Values"])
    topic_id = synth.stacks.observability.get_logical_id(
        synth.stacks.observability.topic.node.default_child
    )
    assert topic_id in raw
    # Alertmanager's role may publish to that topic, through Pod Identity for its account.
    associations = synth.template("platform").find_resources("AWS::EKS::PodIdentityAssociation")
    assert any(a["Properties"]["ServiceAccount"] == ALERTMANAGER_SA for a in associations.values())
    publish = [
        s
        for p in synth.template("platform").find_resources("AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if s["Action"] == "sns:Publish"
    ]
    assert any(topic_id in json.dumps(s["Resource"]) for s in publish)
    # And that topic pages someone.
    subs = synth.template("observability").find_resources("AWS::SNS::Subscription")
    assert {s["Properties"]["Endpoint"] for s in subs.values()} == {
        p.endpoint for p in synth.config.observability.pagers
    }


def test_fluent_bit_ships_every_jobq_pod_to_a_log_group_that_exists(synth: Synth) -> None:
    values = chart_values(synth, "aws-for-fluent-bit")
    env = synth.config.name
    assert f"_{synth.config.namespace}_" in values["input"]["path"]
    out = values["cloudWatchLogs"]
    assert out["enabled"] is True and out["autoCreateGroup"] is False
    template = out["logGroupTemplate"]
    assert template == f"/jobq/{env}/$kubernetes['labels']['app.kubernetes.io/name']"
    groups = {
        g["Properties"]["LogGroupName"]
        for g in synth.template("observability").find_resources("AWS::Logs::LogGroup").values()
        if isinstance(g["Properties"].get("LogGroupName"), str)
    }
    assert out["logGroupName"] in groups
    for obj in manifest_objects(synth.raw("application")):
        if obj["kind"] == "Deployment":
            name = obj["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"]
            assert f"/jobq/{env}/{name}" in groups, f"{name}'s lines would go to no log group"
    associations = synth.template("platform").find_resources("AWS::EKS::PodIdentityAssociation")
    assert any(a["Properties"]["ServiceAccount"] == FLUENT_BIT_SA for a in associations.values())


def test_each_cloudwatch_alarm_uses_the_dimensions_aws_publishes(synth: Synth) -> None:
    alarms = synth.template("observability").find_resources("AWS::CloudWatch::Alarm")
    seen = set()
    for alarm in alarms.values():
        props = alarm["Properties"]
        key = (props["Namespace"], props["MetricName"])
        dims = {d["Name"] for d in props["Dimensions"]}
        assert dims in PUBLISHED_DIMENSIONS[key], f"{props['AlarmName']}: {sorted(dims)}"
        seen.add(key)
    assert seen == set(PUBLISHED_DIMENSIONS)


def test_one_redis_alarm_per_node_and_one_kafka_alarm_per_broker(synth: Synth) -> None:
    alarms = synth.template("observability").find_resources("AWS::CloudWatch::Alarm").values()
    names = [a["Properties"]["AlarmName"] for a in alarms]
    cache, kafka = synth.config.cache, synth.config.kafka
    redis = [n for n in names if "-RedisMemoryHigh-" in n]
    assert len(redis) == cache.shards * (cache.replicas_per_shard + 1)
    brokers = sorted(
        d["Value"]
        for a in alarms
        if a["Properties"]["MetricName"] == "KafkaDataLogsDiskUsed"
        for d in a["Properties"]["Dimensions"]
        if d["Name"] == "Broker ID"
    )
    assert brokers == [str(b) for b in range(1, kafka.brokers + 1)]


def _logical_id(synth: Synth, construct: Any) -> str:
    return str(synth.stacks.observability.get_logical_id(construct.node.default_child))


def test_a_silent_alerting_path_pages_through_the_heartbeat_alarm(synth: Synth) -> None:
    """The dead-man's switch, link by link: the Watchdog rule always fires; Alertmanager
    re-sends it every minute to the heartbeat topic (and to nothing else); Alertmanager may
    publish there; a CloudWatch alarm on that topic's published count, missing data
    breaching, notifies the pagers' topic. Break any link and this fails."""
    rules = yaml.safe_load(RULES_FILE.read_text())["groups"]
    (watchdog,) = [r for g in rules for r in g["rules"] if r.get("alert") == "Watchdog"]
    assert watchdog["expr"] == "vector(1)" and "for" not in watchdog
    config = chart_values(synth, "prometheus")["alertmanager"]["config"]
    (route,) = [r for r in config["route"]["routes"] if r["matchers"] == ['alertname="Watchdog"']]
    assert route["continue"] is False and route["receiver"] != config["route"]["receiver"]
    (receiver,) = [r for r in config["receivers"] if r["name"] == route["receiver"]]
    (sns,) = receiver["sns_configs"]
    heartbeat = _logical_id(synth, synth.stacks.observability.heartbeat_topic)
    pagers = _logical_id(synth, synth.stacks.observability.topic)
    raw = json.dumps(helm_charts(synth.raw("platform"))["prometheus"]["Values"])
    assert heartbeat in raw
    # The repeat must be well inside the alarm's 5-minute periods.
    assert route["repeat_interval"] == route["group_interval"] == "1m"
    publish = [
        s
        for p in synth.template("platform").find_resources("AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if s["Action"] == "sns:Publish"
    ]
    assert any(heartbeat in json.dumps(s["Resource"]) for s in publish)
    # Nobody subscribes to the heartbeat: a page there would be a page a minute.
    subs = synth.template("observability").find_resources("AWS::SNS::Subscription")
    assert all(s["Properties"]["TopicArn"] == {"Ref": pagers} for s in subs.values())
    alarms = synth.template("observability").find_resources("AWS::CloudWatch::Alarm")
    (alarm,) = [
        a["Properties"]
        for a in alarms.values()
        if a["Properties"]["MetricName"] == "NumberOfMessagesPublished"
    ]
    (dimension,) = alarm["Dimensions"]
    assert dimension["Name"] == "TopicName"
    assert dimension["Value"] == {"Fn::GetAtt": [heartbeat, "TopicName"]}
    assert alarm["Namespace"] == "AWS/SNS" and alarm["Statistic"] == "Sum"
    assert alarm["ComparisonOperator"] == "LessThanThreshold" and alarm["Threshold"] == 1
    assert alarm["TreatMissingData"] == "breaching"
    assert alarm["AlarmActions"] == [{"Ref": pagers}]
    assert sns["sigv4"]["region"] == synth.stacks.platform.region
