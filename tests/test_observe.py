"""Each committed transition: one structured log record and the metrics; the engine's
graceful stop (steps in flight finish, leases released)."""

import json
import logging
import threading

from bridge import incidents as sm
from bridge import metrics
from bridge.logformat import JSONLines
from bridge.nova import NovaError
from tests.fakes import FakeNova
from tests.test_engine import alert


def count(metric, **labels) -> float:
    return metrics.REGISTRY.get_sample_value(metric, labels) or 0.0


def decisions(caplog) -> list[dict]:
    """The engine's decision records, as the JSON format writes them."""
    lines = [JSONLines().format(r) for r in caplog.records if getattr(r, "decision", None)]
    assert all("\n" not in line for line in lines)
    return [json.loads(line) for line in lines]


def test_each_transition_is_one_json_line_naming_incident_host_move_and_cause(live_bridge, caplog):
    caplog.set_level(logging.INFO, logger="bridge.decisions")
    live_bridge.post_alert(alert())
    live_bridge.confirm("compute-01")
    live_bridge.settle()
    inc = live_bridge.only_incident()
    logged = decisions(caplog)
    assert [(d["from_state"], d["to_state"]) for d in logged] == [
        (sm.SUSPECTED, sm.FENCING), (sm.FENCING, sm.FENCED), (sm.FENCED, sm.FORCED_DOWN),
        (sm.FORCED_DOWN, sm.NOVA_DOWN), (sm.NOVA_DOWN, sm.OUT_OF_SERVICE)]
    assert all(d["incident"] == inc["id"] and d["host"] == "compute-01" and d["event"] == "transition"
               and d["level"] == "INFO" and d["logger"] == "bridge.decisions" for d in logged)
    forced = logged[2]
    assert forced["effect"] == "ForceDown" and forced["cause"] == "nova-compute service forced down"
    assert forced["result"].startswith("nova force_down done in")
    assert logged[1]["cause"] == "fenced: manual by ops: PDU port off"


def test_alert_text_in_a_json_line_is_escaped_and_no_token_is_logged(live_bridge, caplog):
    caplog.set_level(logging.DEBUG)
    live_bridge.confirm("compute-01", reason="cut\n2026-11-24 INFO forged\u2028line \x1b[2J")
    live_bridge.post_alert(alert())
    live_bridge.settle()
    lines = [JSONLines().format(r) for r in caplog.records]
    assert all(line.isascii() and line.isprintable() for line in lines)
    fenced = [d for d in decisions(caplog) if d["to_state"] == sm.FENCED]
    assert fenced[0]["cause"] == "fenced: manual by ops: cut\n2026-11-24 INFO forged\u2028line \x1b[2J"
    assert not any("test-admin-token" in line or "test-webhook-token" in line for line in lines)


def test_holds_are_counted_by_the_gate_or_step_that_stopped_them(live_bridge, fake_nova):
    timeouts, errors = count("hostdown_bridge_holds_total", gate="fencing_timeout"), \
        count("hostdown_bridge_holds_total", gate="nova_error")
    live_bridge.post_alert(alert())
    live_bridge.settle()
    live_bridge.clock.advance(301)
    live_bridge.settle()
    fake_nova.fail_next("force_down", NovaError("nova force down compute-03 failed: 500", [{"attempt": 4}]))
    live_bridge.post_alert(alert(host="compute-03"))
    live_bridge.confirm("compute-03")
    live_bridge.settle()
    assert count("hostdown_bridge_holds_total", gate="fencing_timeout") == timeouts + 1
    assert count("hostdown_bridge_holds_total", gate="nova_error") == errors + 1
    assert count("hostdown_bridge_nova_calls_total", call="force_down", result="error") >= 1


def test_every_metric_is_named_by_prometheus_conventions():
    for family in metrics.REGISTRY.collect():
        assert family.name.startswith("hostdown_bridge_"), family.name
        assert family.type in ("counter", "histogram"), family.name  # gauges are read from the store
        if family.type == "histogram":
            assert family.name.endswith("_seconds"), family.name
        assert all(s.name in (f"{family.name}_total", f"{family.name}_created", f"{family.name}_bucket",
                              f"{family.name}_count", f"{family.name}_sum") for s in family.samples)


class SlowNova(FakeNova):
    """force_down waits until the test lets it go: a step in flight."""

    def __init__(self, hosts):
        super().__init__(hosts)
        self.entered, self.go = threading.Event(), threading.Event()

    def force_down(self, host, *, dry_run):
        self.entered.set()
        assert self.go.wait(30)
        return super().force_down(host, dry_run=dry_run)


def leased(bridge, incident_id: int) -> tuple:
    row = bridge.store.get_incident(incident_id)
    return row["lease_owner"], row["state"]


def test_stop_lets_the_step_in_flight_finish_then_releases_the_lease_for_another_worker(make_bridge):
    nova = SlowNova(["compute-01"])
    bridge = make_bridge(nova, dry_run=False, nova={"cloud": "fake"})
    bridge.post_alert(alert())
    bridge.confirm("compute-01")
    bridge.engine.start()
    assert nova.entered.wait(30)
    incident_id = bridge.store.list_incidents()[0]["id"]
    assert leased(bridge, incident_id) == (bridge.engine.owner, sm.FENCED)

    # within a bound too short for the step: it keeps its lease, nobody else may act
    assert bridge.engine.stop(0.2) is False
    assert leased(bridge, incident_id)[0] == bridge.engine.owner
    assert bridge.store.claim(incident_id, "other-worker", bridge.clock(), 120) is None

    nova.go.set()
    assert bridge.engine.stop(30) is True
    # the step finished and was committed; the next one was left to whoever comes next
    assert leased(bridge, incident_id) == (None, sm.FORCED_DOWN)
    assert nova.calls == [("force_down", "compute-01")]
    assert bridge.store.claim(incident_id, "other-worker", bridge.clock(), 120) is not None
