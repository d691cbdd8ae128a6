"""The bridge's own alerting rules and Grafana dashboard (alert_templates/): promtool checks
the rules, and both name only metrics the bridge exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from bridge import metrics
from tests.harness.procs import run

TEMPLATES = Path(__file__).resolve().parents[1] / "alert_templates"
RULES = TEMPLATES / "prometheus" / "hostdown-bridge-self.rules.yml"
DASHBOARD = TEMPLATES / "grafana" / "hostdown-bridge-dashboard.json"
# the gauges the store collector reads at scrape time (bridge/metrics.py, _StoreCollector)
STORE_GAUGES = {"hostdown_bridge_incidents", "hostdown_bridge_signals", "hostdown_bridge_database_up"}


def exported() -> set[str]:
    """Every sample name /metrics can carry."""
    names = set(STORE_GAUGES)
    for family in metrics.REGISTRY.collect():
        suffixes = ("_total",) if family.type == "counter" else ("_bucket", "_count", "_sum")
        names |= {family.name + s for s in suffixes}
    return names


def named(expr: str) -> set[str]:
    return set(re.findall(r"\bhostdown_bridge_\w+", expr))


@pytest.mark.monitoring
def test_promtool_checks_the_rules_and_their_unit_tests_pass():
    run("promtool", "check", "rules", RULES)
    run("promtool", "test", "rules", RULES.with_name("hostdown-bridge-self.rules.test.yml"))


def test_the_rules_cover_held_fencing_stalled_and_blind_with_metrics_the_bridge_exports():
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    assert {"HostdownBridgeIncidentHeld", "HostdownBridgeFencingFailing", "HostdownBridgeEngineStalled",
            "HostdownBridgeObserverBlind"} <= {r["alert"] for r in rules}
    used = set().union(*(named(r["expr"]) for r in rules))
    assert used and used <= exported(), used - exported()


def test_the_dashboard_charts_every_metric_family_and_only_exported_ones():
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = set().union(*(named(e) for e in exprs))
    assert used <= exported(), used - exported()
    families = {f.name for f in metrics.REGISTRY.collect()} | {"hostdown_bridge_incidents", "hostdown_bridge_database_up"}
    charted = {re.sub(r"_(total|bucket|count|sum)$", "", n) for n in used}
    assert families <= charted, families - charted
