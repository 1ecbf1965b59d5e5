"""Grafana dashboards: valid JSON that matches dashboards/build.py, every panel
titled and querying something, queries that Prometheus can parse, and only
metrics from the contract."""

from __future__ import annotations

import importlib.util
import json
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
DASHBOARDS_DIR = ROOT / "dashboards"
DASHBOARD_FILES = sorted(DASHBOARDS_DIR.glob("*.json"))
# Grafana's own variables, replaced by plausible values before promtool parses a query.
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    "${datasource}": "prometheus",
    "$queue": ".*",
}


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


DASHBOARDS = {path.name: _load(path) for path in DASHBOARD_FILES}


def _queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable."""
    found = [
        (f"panel {panel['title']!r}", target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            found.append(
                (
                    f"variable {variable['name']}",
                    query["query"] if isinstance(query, dict) else query,
                )
            )
    return found


def test_there_is_an_overview_dashboard() -> None:
    assert "jobq-overview.json" in DASHBOARDS


def test_committed_json_equals_build_script_output() -> None:
    spec = importlib.util.spec_from_file_location("dashboards_build", DASHBOARDS_DIR / "build.py")
    assert spec is not None and spec.loader is not None
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    assert set(build.DASHBOARDS) == set(DASHBOARDS), (
        "build.py and the JSON files list different dashboards"
    )
    for name, make in build.DASHBOARDS.items():
        assert (DASHBOARDS_DIR / name).read_text() == build.render(make()), (
            f"{name} is stale: run python dashboards/build.py"
        )


def test_dashboard_uids_are_unique() -> None:
    uids = [d["uid"] for d in DASHBOARDS.values()]
    assert all(uids) and len(uids) == len(set(uids))


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_dashboard_has_schema_datasource_and_queue_variables(name: str) -> None:
    dashboard = DASHBOARDS[name]
    assert dashboard["schemaVersion"] >= 36
    assert dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["queue"]["type"] == "query"


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_panel_has_title_target_and_templated_datasource(name: str) -> None:
    panels = DASHBOARDS[name]["panels"]
    assert panels
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in panels:
        assert panel.get("title", "").strip(), f"panel {panel['id']} has no title"
        assert panel.get("targets"), f"panel {panel['title']!r} has no target"
        for ref in [panel.get("datasource")] + [t.get("datasource") for t in panel["targets"]]:
            assert ref == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert all(t.get("expr", "").strip() for t in panel["targets"]), panel["title"]


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_panels_stay_on_the_grid_without_overlapping(name: str) -> None:
    taken: set[tuple[int, int]] = set()
    for panel in DASHBOARDS[name]["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        cells = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & taken, f"{panel['title']!r} overlaps another panel"
        taken |= cells


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_queries_read_only_contract_metrics(name: str) -> None:
    used: set[str] = set()
    for where, expr in _queries(DASHBOARDS[name]):
        names = {base_metric_name(n) for n in raw_metric_names(expr)}
        assert names, f"{where} reads no jq_* metric"
        assert not recorded_names(expr), (
            f"{where} reads a recorded series; dashboards use raw metrics"
        )
        unknown = names - METRICS.keys()
        assert not unknown, f"{where}: not in tests/ops/metric_contract.py: {sorted(unknown)}"
        used |= names
    # The overview is meant to show everything the app exports.
    if name == "jobq-overview.json":
        assert METRICS.keys() - used == set(), "contract metrics the overview never shows"


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_panel_queries_parse_as_promql(name: str, tmp_path: Path) -> None:
    # promtool has no "parse this query" command, so every panel query becomes
    # a recording rule and `promtool check rules` parses them all.
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI"):
            pytest.fail("promtool not found: run scripts/install-promtool.sh")
        pytest.skip("promtool not found: run scripts/install-promtool.sh")
    rules = []
    for i, (where, expr) in enumerate(_queries(DASHBOARDS[name])):
        if where.startswith("variable"):
            continue  # label_values() is Grafana's, not PromQL
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        assert not re.search(r"\$\w", expr), f"{where}: unknown Grafana variable in {expr}"
        rules.append({"record": f"dashboard_query_{i}", "expr": expr})
    rule_file = tmp_path / "dashboard_queries.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(rule_file)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
