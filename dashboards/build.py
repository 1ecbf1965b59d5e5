#!/usr/bin/env python3
"""Build the Grafana dashboards in this folder from Python.

Why generated rather than hand-written: Grafana JSON repeats the datasource,
ids and grid positions on every panel, and hand edits drift (two panels with
one id, a panel pointing at a fixed datasource uid). Here each panel is one
call, and the layout, ids and datasource references come from one place.
The JSON is committed as well, so Grafana provisioning reads it without
Python; tests/ops checks that it equals this script's output.

    python dashboards/build.py           # rewrite the JSON files
    python dashboards/build.py --check   # exit 1 if a JSON file is stale

Standard library only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SCHEMA_VERSION = 39
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
QUEUE = 'queue=~"$queue"'
RATE = "$__rate_interval"
# OK and the codes that are the caller's fault: what the server error ratio
# leaves out, as in alerts/jobq.rules.yml.
NOT_SERVER_ERROR_CODES = (
    "OK|CANCELLED|INVALID_ARGUMENT|NOT_FOUND|ALREADY_EXISTS|FAILED_PRECONDITION"
    "|OUT_OF_RANGE|UNAUTHENTICATED|PERMISSION_DENIED"
)
# Long poll and stream: slow by design, so kept out of latency panels.
WAITING_METHODS = 'method!~".*/(LeaseJobs|WatchJob)"'

Target = tuple[str, str]  # (PromQL, legend)


class Layout:
    """Places panels left to right on Grafana's 24-column grid, wrapping rows."""

    def __init__(self) -> None:
        self.x = 0
        self.y = 0
        self.row_height = 0
        self.next_id = 1

    def place(self, width: int, height: int) -> tuple[int, dict[str, int]]:
        if self.x + width > 24:
            self.x, self.y, self.row_height = 0, self.y + self.row_height, 0
        pos = {"h": height, "w": width, "x": self.x, "y": self.y}
        self.x += width
        self.row_height = max(self.row_height, height)
        panel_id, self.next_id = self.next_id, self.next_id + 1
        return panel_id, pos


def _targets(targets: list[Target]) -> list[dict[str, Any]]:
    return [
        {
            "datasource": DATASOURCE,
            "expr": expr,
            "legendFormat": legend,
            "range": True,
            "refId": chr(ord("A") + i),
        }
        for i, (expr, legend) in enumerate(targets)
    ]


def timeseries(
    layout: Layout,
    title: str,
    description: str,
    targets: list[Target],
    unit: str,
    width: int = 8,
    height: int = 8,
    stack: bool = False,
) -> dict[str, Any]:
    panel_id, pos = layout.place(width, height)
    custom: dict[str, Any] = {"fillOpacity": 10, "showPoints": "never", "spanNulls": False}
    if stack:
        custom["stacking"] = {"group": "A", "mode": "normal"}
    return {
        "datasource": DATASOURCE,
        "description": description,
        "fieldConfig": {"defaults": {"custom": custom, "min": 0, "unit": unit}, "overrides": []},
        "gridPos": pos,
        "id": panel_id,
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "targets": _targets(targets),
        "title": title,
        "type": "timeseries",
    }


def stat(
    layout: Layout,
    title: str,
    description: str,
    target: Target,
    unit: str,
    thresholds: list[tuple[float | None, str]],
) -> dict[str, Any]:
    panel_id, pos = layout.place(4, 4)
    return {
        "datasource": DATASOURCE,
        "description": description,
        "fieldConfig": {
            "defaults": {
                "thresholds": {
                    "mode": "absolute",
                    "steps": [{"color": color, "value": value} for value, color in thresholds],
                },
                "unit": unit,
            },
            "overrides": [],
        },
        "gridPos": pos,
        "id": panel_id,
        "options": {
            "colorMode": "background",
            "graphMode": "area",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "textMode": "auto",
        },
        "targets": _targets([target]),
        "title": title,
        "type": "stat",
    }


def quantile(q: float, histogram: str, by: str = "", selector: str = "") -> str:
    """PromQL for quantile q of a histogram, optionally per label `by`."""
    group = f"{by}, le" if by else "le"
    series = f"{histogram}_bucket{{{selector}}}" if selector else f"{histogram}_bucket"
    return f"histogram_quantile({q}, sum by ({group}) (rate({series}[{RATE}])))"


def quantiles(histogram: str, selector: str) -> list[Target]:
    return [
        (quantile(q, histogram, selector=selector), f"p{int(q * 100)}") for q in (0.5, 0.95, 0.99)
    ]


def overview() -> dict[str, Any]:
    lay = Layout()
    panels = [
        # Headline numbers.
        stat(
            lay,
            "Active workers",
            "Workers with a fresh heartbeat (max over server replicas).",
            ("max(jq_workers_active)", "workers"),
            "none",
            [(None, "red"), (1, "green")],
        ),
        stat(
            lay,
            "Queued jobs",
            "Due jobs waiting for a worker in the selected queues.",
            (f'sum(max by (queue) (jq_job_queue_depth{{{QUEUE}, state="queued"}}))', "queued"),
            "none",
            [(None, "green"), (1000, "orange")],
        ),
        stat(
            lay,
            "Running jobs",
            "Jobs leased by a worker in the selected queues.",
            (f'sum(max by (queue) (jq_job_queue_depth{{{QUEUE}, state="running"}}))', "running"),
            "none",
            [(None, "green")],
        ),
        stat(
            lay,
            "Dead letters",
            "Jobs in the dead-letter queue for the selected queues.",
            (f'sum(max by (queue) (jq_job_queue_depth{{{QUEUE}, state="dead"}}))', "dead"),
            "none",
            [(None, "green"), (1, "orange")],
        ),
        stat(
            lay,
            "Worker utilisation",
            "Jobs in flight over worker capacity, all workers.",
            ("sum(jq_worker_jobs_in_flight) / sum(jq_worker_capacity)", "utilisation"),
            "percentunit",
            [(None, "green"), (0.8, "orange"), (0.95, "red")],
        ),
        stat(
            lay,
            "Outbox oldest event",
            "Age of the oldest job event not yet published to Kafka.",
            ("max(jq_outbox_oldest_age_seconds)", "age"),
            "s",
            [(None, "green"), (60, "orange"), (300, "red")],
        ),
        # Flow of jobs.
        timeseries(
            lay,
            "Throughput by status",
            "Job transitions per second by outcome"
            " (submitted, started, succeeded, failed, retried, dead, ...).",
            [(f"sum by (status) (rate(jq_job_total{{{QUEUE}}}[{RATE}]))", "{{status}}")],
            "ops",
            width=8,
        ),
        timeseries(
            lay,
            "Queue depth",
            "Jobs per queue in the waiting and running states"
            " (max over server replicas, which all read the same database).",
            [
                (
                    "max by (queue, state) "
                    f'(jq_job_queue_depth{{{QUEUE}, state=~"scheduled|queued|running"}})',
                    "{{queue}} {{state}}",
                )
            ],
            "none",
            width=8,
        ),
        timeseries(
            lay,
            "Paused queues",
            "Queues paused by an operator (1 while paused): their jobs wait by design,"
            " and the backlog and no-worker alerts leave them out.",
            [(f"max by (queue) (jq_queue_paused{{{QUEUE}}}) == 1", "{{queue}}")],
            "none",
        ),
        # Workers.
        timeseries(
            lay,
            "Worker utilisation by worker",
            "Jobs in flight over capacity, per worker and overall.",
            [
                ("sum(jq_worker_jobs_in_flight) / sum(jq_worker_capacity)", "all workers"),
                (
                    "sum by (instance) (jq_worker_jobs_in_flight)"
                    " / sum by (instance) (jq_worker_capacity)",
                    "{{instance}}",
                ),
            ],
            "percentunit",
        ),
        timeseries(
            lay,
            "Jobs in flight and capacity",
            "Total jobs being processed against total worker slots.",
            [
                ("sum(jq_worker_jobs_in_flight)", "in flight"),
                ("sum(jq_worker_capacity)", "capacity"),
            ],
            "none",
        ),
        timeseries(
            lay,
            "Active workers over time",
            "Workers with a fresh heartbeat, as the servers see them.",
            [("max(jq_workers_active)", "active workers")],
            "none",
        ),
        # Latency.
        timeseries(
            lay,
            "Submit-to-start latency",
            "Time from a job becoming due (run_at) to being leased.",
            quantiles("jq_job_submit_to_start_seconds", QUEUE),
            "s",
        ),
        timeseries(
            lay,
            "Processing duration",
            "How long workers take to run jobs, all outcomes.",
            quantiles("jq_job_processing_duration_seconds", QUEUE),
            "s",
        ),
        timeseries(
            lay,
            "Processing duration p95 by type",
            "95th percentile processing time per job type.",
            [
                (
                    quantile(0.95, "jq_job_processing_duration_seconds", "type", QUEUE),
                    "{{type}}",
                )
            ],
            "s",
        ),
        timeseries(
            lay,
            "gRPC p99 by method",
            "99th percentile RPC duration per method;"
            " LeaseJobs (long poll) and WatchJob (stream) are left out.",
            [
                (
                    quantile(0.99, "jq_grpc_request_duration_seconds", "method", WAITING_METHODS),
                    "{{method}}",
                )
            ],
            "s",
            width=12,
        ),
        timeseries(
            lay,
            "gRPC requests by code",
            "Requests per second by status code.",
            [(f"sum by (code) (rate(jq_grpc_request_duration_seconds_count[{RATE}]))", "{{code}}")],
            "reqps",
            width=12,
            stack=True,
        ),
        timeseries(
            lay,
            "Watch streams",
            "WatchJob streams open, and those dropped per second because their client read"
            " nothing for JQ_STREAM_SEND_TIMEOUT (a stuck or overloaded watcher).",
            [
                ("sum(jq_grpc_streams_open)", "open"),
                (f"sum(rate(jq_grpc_streams_dropped_total[{RATE}]))", "dropped / s"),
            ],
            "short",
            width=12,
        ),
        # Errors.
        timeseries(
            lay,
            "gRPC server error ratio",
            "Share of requests that ended with a server-side code"
            " (caller errors such as INVALID_ARGUMENT excluded). Alert at 5%.",
            [
                (
                    f'sum(rate(jq_grpc_request_duration_seconds_count{{code!~"{NOT_SERVER_ERROR_CODES}"}}[{RATE}]))'
                    f" / sum(rate(jq_grpc_request_duration_seconds_count[{RATE}]))",
                    "server errors",
                )
            ],
            "percentunit",
        ),
        timeseries(
            lay,
            "Retries, lease expiries, dead letters",
            "Per second, selected queues.",
            [
                (
                    f"sum by (queue) (rate(jq_job_retries_total{{{QUEUE}}}[{RATE}]))",
                    "retries {{queue}}",
                ),
                (
                    f"sum by (queue) (rate(jq_lease_expired_total{{{QUEUE}}}[{RATE}]))",
                    "lease expiries {{queue}}",
                ),
                (
                    f"sum by (queue) (rate(jq_dead_letters_total{{{QUEUE}}}[{RATE}]))",
                    "dead letters {{queue}}",
                ),
            ],
            "ops",
        ),
        timeseries(
            lay,
            "Store errors",
            "PostgreSQL operations failing, per second by operation.",
            [(f"sum by (operation) (rate(jq_store_errors_total[{RATE}]))", "{{operation}}")],
            "ops",
        ),
        # Backing services.
        timeseries(
            lay,
            "DB query p99 by operation",
            "99th percentile PostgreSQL query time.",
            [
                (
                    quantile(0.99, "jq_db_query_duration_seconds", "operation"),
                    "{{operation}}",
                )
            ],
            "s",
        ),
        timeseries(
            lay,
            "Redis operation p99 by operation",
            "99th percentile Redis call time.",
            [
                (
                    quantile(0.99, "jq_redis_operation_duration_seconds", "operation"),
                    "{{operation}}",
                )
            ],
            "s",
        ),
        timeseries(
            lay,
            "Redis fallback and errors",
            "Replicas serving without Redis (1 each; ADR 0015: the status cache and presence"
            " step aside, nothing is refused) and failed Redis calls per second.",
            [
                ("sum(jq_redis_fallback)", "replicas in fallback"),
                (f"sum by (operation) (rate(jq_redis_errors_total[{RATE}]))", "{{operation}} errors"),
            ],
            "none",
        ),
        timeseries(
            lay,
            "Status cache",
            "GetJob/WatchJob reads by cache result, and job changes announced by other replicas.",
            [
                (f"sum by (result) (rate(jq_status_cache_total[{RATE}]))", "{{result}}"),
                (f"sum(rate(jq_job_changes_received_total[{RATE}]))", "changes received"),
            ],
            "ops",
        ),
        timeseries(
            lay,
            "In-flight jobs",
            "Leased jobs by queue, from the coordination counters (the leader exports them).",
            [(f"max by (queue) (jq_inflight_jobs{{{QUEUE}}})", "{{queue}}")],
            "none",
        ),
        timeseries(
            lay,
            "In-flight jobs by worker",
            "Leased jobs each live worker holds, from the coordination counters.",
            [("max by (worker) (jq_worker_inflight_jobs)", "{{worker}}")],
            "none",
            width=12,
        ),
        timeseries(
            lay,
            "Leases throttled by limit",
            "Leasable jobs that leases held back per second, by queue and limit (queue_cap,"
            " key_cap, rate, key_rate; ADR 0017). Steady throttling under a backlog is the limit"
            " doing its job.",
            [
                (
                    f"sum by (queue, reason) (rate(jq_lease_throttled_total{{{QUEUE}}}[{RATE}]))",
                    "{{queue}} {{reason}}",
                )
            ],
            "ops",
            width=12,
        ),
        timeseries(
            lay,
            "Cap slots in use, local rate limits",
            "Running jobs of each capped queue as the last lease counted them, and replicas"
            " deciding rates from local buckets because Redis does not answer (1 each).",
            [
                (f"max by (queue) (jq_cap_slots_in_use{{{QUEUE}}})", "{{queue}} slots"),
                ("sum(jq_rate_limit_local)", "replicas on local rates"),
            ],
            "none",
            width=12,
        ),
        timeseries(
            lay,
            "Outbox backlog",
            "Job events waiting to be published to Kafka.",
            [("max(jq_outbox_backlog)", "unpublished events")],
            "none",
        ),
        timeseries(
            lay,
            "Outbox oldest age",
            "Age of the oldest unpublished job event. Alert at 5 minutes.",
            [("max(jq_outbox_oldest_age_seconds)", "oldest")],
            "s",
            width=12,
        ),
        timeseries(
            lay,
            "Kafka consumer lag",
            "Messages behind, per consumer group and topic (summed over partitions).",
            [
                (
                    "sum by (group, topic)"
                    " (max by (group, topic, partition) (jq_kafka_consumer_lag))",
                    "{{group}} {{topic}}",
                )
            ],
            "none",
            width=12,
        ),
        timeseries(
            lay,
            "Results processed",
            "Finished jobs written by jq-result-processor, by outcome.",
            [("sum by (outcome) (rate(jq_results_processed_total[5m]))", "{{outcome}}")],
            "ops",
            width=12,
        ),
        stat(
            lay,
            "Outbox relay",
            "1: a server replica publishes the outbox to Kafka. 0: no Kafka configured; events"
            " are only kept (up to JQ_OUTBOX_RETENTION) and the outbox alerts are off.",
            ("max(jq_outbox_relay_enabled)", "relay on"),
            "none",
            [(None, "blue"), (1, "green")],
        ),
        timeseries(
            lay,
            "Outbox events pruned",
            "Job events deleted by outbox retention (JQ_OUTBOX_RETENTION), per second.",
            [("sum(rate(jq_outbox_events_pruned_total[" + RATE + "]))", "pruned")],
            "ops",
            width=8,
        ),
        # Cluster-wide, from the event stream (jq-metrics-aggregator): the same whichever
        # server replica Prometheus scraped.
        timeseries(
            lay,
            "Cluster throughput by outcome",
            "Job transitions per second across the cluster, from jq-metrics-aggregator.",
            [
                (
                    f"sum by (queue, outcome) (rate(jq_cluster_jobs_total{{{QUEUE}}}[{RATE}]))",
                    "{{queue}} {{outcome}}",
                )
            ],
            "ops",
            width=12,
        ),
        timeseries(
            lay,
            "Cluster dead-letter rate",
            "Jobs dead-lettered per second across the cluster, from jq-metrics-aggregator.",
            [
                (
                    "sum by (queue) (rate(jq_cluster_jobs_total"
                    f'{{outcome="dead_lettered",{QUEUE}}}[{RATE}]))',
                    "{{queue}}",
                )
            ],
            "ops",
            width=12,
        ),
        timeseries(
            lay,
            "Cluster submit-to-start p95",
            "95th percentile time from a job becoming due to its start, across the cluster.",
            [(quantile(0.95, "jq_cluster_job_submit_to_start_seconds", "queue", QUEUE), "{{queue}}")],
            "s",
            width=12,
        ),
        timeseries(
            lay,
            "Cluster run time p95",
            "95th percentile time from an attempt's start to its end, across the cluster.",
            [
                (
                    quantile(0.95, "jq_cluster_job_run_seconds", "queue, outcome", QUEUE),
                    "{{queue}} {{outcome}}",
                )
            ],
            "s",
            width=12,
        ),
    ]
    return {
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "description": "jobq: job flow, queues, workers, latency, errors, outbox and Kafka.",
        "editable": True,
        "graphTooltip": 1,
        "links": [],
        "panels": panels,
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "tags": ["jobq"],
        "templating": {
            "list": [
                {
                    "current": {},
                    "hide": 0,
                    "includeAll": False,
                    "label": "Data source",
                    "multi": False,
                    "name": "datasource",
                    "options": [],
                    "query": "prometheus",
                    "refresh": 1,
                    "regex": "",
                    "type": "datasource",
                },
                {
                    "allValue": ".*",
                    "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
                    "datasource": DATASOURCE,
                    "definition": "label_values(jq_job_queue_depth, queue)",
                    "hide": 0,
                    "includeAll": True,
                    "label": "Queue",
                    "multi": True,
                    "name": "queue",
                    "options": [],
                    "query": {
                        "qryType": 1,
                        "query": "label_values(jq_job_queue_depth, queue)",
                        "refId": "PrometheusVariableQueryEditor-VariableQuery",
                    },
                    "refresh": 2,
                    "regex": "",
                    "sort": 1,
                    "type": "query",
                },
            ]
        },
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "title": "jobq overview",
        "uid": "jobq-overview",
        "version": 1,
    }


DASHBOARDS = {"jobq-overview.json": overview}


def render(dashboard: dict[str, Any]) -> str:
    return json.dumps(dashboard, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a committed file is stale")
    args = parser.parse_args(argv)
    stale = []
    for name, build in DASHBOARDS.items():
        path, text = HERE / name, render(build())
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print(f"stale: {', '.join(stale)}: run python dashboards/build.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
