"""The minimal PromQL name extraction that the contract checks rely on."""

from __future__ import annotations

from metric_contract import base_metric_name
from promql_names import raw_metric_names, recorded_names


def test_histogram_series_map_to_their_base_name_and_label_values_are_ignored() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (le, method) (rate("
        'jq_grpc_request_duration_seconds_bucket{method!~".*/jq_not_a_metric"}[$__rate_interval])))'
    )
    assert raw_metric_names(expr) == {"jq_grpc_request_duration_seconds_bucket"}
    assert base_metric_name("jq_grpc_request_duration_seconds_bucket") == (
        "jq_grpc_request_duration_seconds"
    )


def test_suffix_is_kept_unless_the_base_is_a_histogram() -> None:
    # jq_outbox_backlog is a gauge: jq_outbox_backlog_count is not one of its series.
    assert base_metric_name("jq_outbox_backlog_count") == "jq_outbox_backlog_count"


def test_recorded_series_are_told_apart_from_raw_metrics() -> None:
    expr = 'queue_state:jq_job_queue_depth:max{state="queued"} > 0 and on () jq_workers_active == 0'
    assert recorded_names(expr) == {"queue_state:jq_job_queue_depth:max"}
    assert raw_metric_names(expr) == {"jq_workers_active"}


def test_misspelt_metric_is_found() -> None:
    assert raw_metric_names("sum(rate(jq_jobs_total[5m]))") == {"jq_jobs_total"}
