"""Fencing by the bridge itself, through the engine, a fake Nova and a fake BMC: read-back proof,
escalation over a host's methods, held when every method fails, and the fencing path's safety."""

import logging
import threading

import pytest
import yaml

from bridge import incidents as sm
from bridge.engine import Engine
from bridge.fencing import POWER_DRIVERS
from bridge.fencing.base import FenceError
from tests.fakepower import FakePower, wrong_password
from tests.test_engine import alert, states

PW = "hunter2-bmc-secret"
REDFISH = {"driver": "redfish", "address": "https://{{ short }}-bmc.example", "username": "root",
           "password": {"env": "BMC_PW"}, "timeout": 30, "retries": 2}
MANUAL = {"driver": "manual"}


@pytest.fixture
def power(monkeypatch):
    fake = FakePower()
    monkeypatch.setitem(POWER_DRIVERS, "redfish", lambda: fake)
    monkeypatch.setenv("BMC_PW", PW)
    return fake


@pytest.fixture
def fencing_bridge(make_bridge, fake_nova, power):
    def make(methods=(REDFISH, MANUAL), **fencing):
        return make_bridge(fake_nova, dry_run=False, nova={"cloud": "fake"},
                           fencing={"methods": list(methods), "step_wait": 10, "poll_interval": 1, **fencing})
    return make


def timeline(inc) -> list[str]:
    return [t["cause"] for t in inc["timeline"]]


def test_redfish_read_back_off_is_proof_and_nova_follows_with_no_person(fencing_bridge, power, fake_nova):
    bridge = fencing_bridge()
    bridge.post_alert(alert())
    bridge.settle()
    inc = bridge.only_incident()
    assert inc["state"] == sm.OUT_OF_SERVICE
    assert fake_nova.calls == [("force_down", "compute-01"), ("disable", "compute-01")]
    assert [c for c, _, _ in power.calls] == ["power_off", "power_state"]
    assert states(inc) == [sm.SUSPECTED, sm.FENCING, sm.FENCED, sm.FORCED_DOWN, sm.NOVA_DOWN, sm.OUT_OF_SERVICE]
    [ev] = inc["evidence"]
    assert (ev["kind"], ev["actor"]) == ("redfish", "hostdown-bridge") and ev["id"] == inc["proof_id"]
    detail = ev["detail"]
    assert detail["target"] == {"host": "compute-01", "method": "redfish", "address": "https://compute-01-bmc.example",
                                "username": "root", "options": {}}
    assert detail["state"] == "off" and detail["requested"] == "ComputerSystem.Reset ForceOff"
    assert detail["requested_at"] and detail["read_at"] and detail["durations_ms"]["read_back"] is not None
    assert "fencing requested: redfish (method 1/2, attempt 1/3)" in timeline(inc)
    assert fake_nova.services["compute-01"]["disabled_reason"].endswith("(redfish by hostdown-bridge)")
    shown = bridge.admin("GET", f"/v1/incidents/{inc['id']}").json["attempts"]
    assert [(a["driver"], a["method"], a["attempt"], a["result"]) for a in shown] == [
        ("redfish", 1, 1, "requested"), ("redfish", 1, 1, "proof")]
    assert {a["address"] for a in shown} == {"https://compute-01-bmc.example"}
    assert shown[0]["requested"] == shown[1]["requested"] == "ComputerSystem.Reset ForceOff"
    assert shown[1]["state"] == "off" and shown[1]["read_at"] and shown[1]["durations_ms"]["read_back"] is not None


def test_the_bridge_polls_until_the_bmc_reads_back_off(fencing_bridge, power, fake_nova):
    power.reads["compute-01"] = ["on", "on", FenceError("redfish power state: read timed out")]
    bridge = fencing_bridge()
    bridge.post_alert(alert())
    for _ in range(3):
        bridge.settle()
        assert bridge.only_incident()["state"] == sm.FENCING and fake_nova.calls == []
        bridge.clock.advance(1)
    bridge.settle()
    assert bridge.only_incident()["state"] == sm.OUT_OF_SERVICE
    assert power.count("power_off", "compute-01") == 1 and power.count("power_state", "compute-01") == 4


def test_wrong_credentials_retry_then_the_next_method_then_held_and_nova_untouched(fencing_bridge, power, fake_nova,
                                                                                    caplog):
    caplog.set_level(logging.DEBUG)
    power.off_errors["compute-01"] = [wrong_password("compute-01") for _ in range(3)]
    bridge = fencing_bridge()
    bridge.post_alert(alert())
    bridge.settle()
    inc = bridge.only_incident()
    # three redfish attempts failed, each on the timeline; now the manual method waits for a person
    assert inc["state"] == sm.FENCING and inc["fence_method"] == 1 and power.count("power_off", "compute-01") == 3
    failures = [t for t in inc["timeline"] if "failed: redfish power off" in t["cause"]]
    assert len(failures) == 3 and "401 Unauthorized" in failures[0]["cause"]
    assert failures[0]["detail"]["target"]["address"] == "https://compute-01-bmc.example"
    assert "next: redfish (method 1/2, attempt 2/3)" in failures[0]["cause"]
    assert "next: manual (method 2/2, attempt 1/1)" in failures[2]["cause"]
    bridge.clock.advance(301)
    bridge.settle()
    inc = bridge.only_incident()
    assert inc["state"] == sm.HELD and "Nova left untouched (no fencing method left after" in inc["last_error"]
    assert fake_nova.calls == []
    response = bridge.admin("GET", f"/v1/incidents/{inc['id']}")
    assert [(a["driver"], a["attempt"], a["result"]) for a in response.json["attempts"]] == [
        ("redfish", 1, "failed"), ("redfish", 2, "failed"), ("redfish", 3, "failed"), ("manual", 1, "requested"),
        ("manual", 1, "failed")]
    assert "401 Unauthorized" in response.json["attempts"][0]["error"]
    shown = response.get_data(as_text=True)
    assert PW not in shown and PW not in caplog.text and "compute-01-bmc.example" in shown


def test_a_bmc_that_never_reads_back_off_ends_held_after_every_attempt(fencing_bridge, power, fake_nova):
    power.reads["compute-01"] = ["on"] * 1000
    bridge = fencing_bridge(methods=[REDFISH])
    bridge.post_alert(alert())
    for _ in range(3):
        bridge.settle()
        bridge.clock.advance(31)
    bridge.settle()
    inc = bridge.only_incident()
    assert inc["state"] == sm.HELD and fake_nova.calls == []
    assert power.count("power_off", "compute-01") == 3  # one per attempt: harmless when already off
    assert inc["last_error"] == ("no fencing proof within 30s: Nova left untouched (no fencing method left after "
                                 "redfish (method 1/1, attempt 3/3))")
    shown = bridge.admin("GET", f"/v1/incidents/{inc['id']}").json["attempts"]
    assert [(a["attempt"], a["result"], a["address"]) for a in shown] == [
        (n, result, "https://compute-01-bmc.example") for n in (1, 2, 3) for result in ("requested", "failed")]
    # a person's retry starts fencing again from the first method
    bridge.admin("POST", f"/v1/incidents/{inc['id']}/retry", json={"reason": "BMC firmware fixed"})
    power.reads["compute-01"] = []
    bridge.settle()
    assert bridge.only_incident()["state"] == sm.OUT_OF_SERVICE


def test_an_unreachable_bmc_with_failed_timeout_and_no_other_method(fencing_bridge, power, fake_nova):
    power.off_errors["compute-01"] = [FenceError("redfish power off: connection refused")] * 3
    bridge = fencing_bridge(methods=[REDFISH], on_timeout="failed")
    bridge.post_alert(alert())
    bridge.settle()
    inc = bridge.only_incident()
    assert inc["state"] == sm.HELD and "connection refused" in inc["last_error"] and fake_nova.calls == []


def test_a_persons_confirmation_counts_while_a_bmc_is_still_being_asked(fencing_bridge, power, fake_nova):
    power.reads["compute-01"] = ["on"] * 1000
    bridge = fencing_bridge()
    bridge.post_alert(alert())
    bridge.settle()
    bridge.confirm("compute-01", operator="alice")
    bridge.settle()
    inc = bridge.only_incident()
    assert inc["state"] == sm.OUT_OF_SERVICE and inc["evidence"][0]["kind"] == "manual"


def test_dry_run_says_what_it_would_do_and_powers_nothing_off(make_bridge, fake_nova, power):
    bridge = make_bridge(fake_nova, dry_run=True, nova={"cloud": "fake"},
                         fencing={"methods": [REDFISH, MANUAL], "step_wait": 10})
    bridge.post_alert(alert())
    bridge.settle()
    inc = bridge.only_incident()
    assert power.count("power_off", "compute-01") == 0 and fake_nova.calls == []
    assert ("dry-run: would power off compute-01 with redfish at https://compute-01-bmc.example "
            "(ComputerSystem.Reset ForceOff)") in timeline(inc)


def test_a_method_without_a_target_for_the_host_is_skipped(fencing_bridge, power, fake_nova):
    bridge = fencing_bridge(methods=[{**REDFISH, "address": "https://{{ bmc }}"}, MANUAL])
    bridge.post_alert(alert())
    bridge.settle()
    inc = bridge.only_incident()
    assert inc["state"] == sm.FENCING and inc["fence_method"] == 1 and power.calls == []
    assert any("redfish (method 1/2, attempt 1/3) failed: refused: " in c and "'bmc' is undefined" in c
               for c in timeline(inc))


def test_a_crash_between_power_off_and_read_back_resumes_by_reading_back(fencing_bridge, power, fake_nova):
    power.reads["compute-01"] = ["on"]
    bridge = fencing_bridge()
    bridge.post_alert(alert())
    bridge.settle()  # powered off, read back on: waiting
    assert power.count("power_off", "compute-01") == 1
    # the worker dies; another one (a new process) finds the incident once it is due
    other = Engine(bridge.config, bridge.store, fake_nova, clock=bridge.clock)
    bridge.clock.advance(1)
    while other.run_once():
        pass
    inc = bridge.only_incident()
    assert inc["state"] == sm.OUT_OF_SERVICE
    assert [c for c, _, _ in power.calls] == ["power_off", "power_state", "power_state"]


def test_two_workers_never_fence_one_host_at_once(fencing_bridge, power, fake_nova):
    bridge = fencing_bridge()
    bridge.post_alert(alert())
    bridge.engine.intake_pending()
    [incident_id] = [i["id"] for i in bridge.store.list_incidents()]
    power.gate["compute-01"] = gate = threading.Event()
    second = Engine(bridge.config, bridge.store, fake_nova, clock=bridge.clock)
    first = threading.Thread(target=bridge.engine.step, args=(incident_id,))
    first.start()
    while not power.in_flight.get("compute-01"):  # the first worker is inside power_off
        threading.Event().wait(0.01)
    assert second.step(incident_id) is False  # leased: the second worker does not touch the BMC
    gate.set()
    first.join()
    bridge.settle()
    assert power.count("power_off", "compute-01") == 1 and power.most_in_flight["compute-01"] == 1
    assert bridge.only_incident()["state"] == sm.OUT_OF_SERVICE


def test_a_slow_bmc_never_stalls_other_incidents(fencing_bridge, power, fake_nova):
    bridge = fencing_bridge(step_wait=0.05)
    power.gate["compute-01"] = gate = threading.Event()
    bridge.post_alert(alert("compute-01"))
    bridge.post_alert(alert("compute-03"))
    bridge.settle()
    by_host = {i["host"]: i for i in bridge.store.list_incidents()}
    assert by_host["compute-03"]["state"] == sm.OUT_OF_SERVICE  # went on while compute-01's BMC hung
    assert by_host["compute-01"]["state"] == sm.FENCING and fake_nova.calls[0] == ("force_down", "compute-03")
    gate.set()
    while power.in_flight.get("compute-01"):
        threading.Event().wait(0.01)
    for _ in range(5):  # the late answers are collected by the next checks
        bridge.clock.advance(1)
        bridge.settle()
    assert bridge.incident(by_host["compute-01"]["id"])["state"] == sm.OUT_OF_SERVICE
    assert power.count("power_off", "compute-01") == 1


# ---- the alert driver: the monitoring system fenced the host, and its alert is the proof ----

HOST_DOWN_RULE = {"name": "compute-host-down", "source": "alertmanager", "match_re": {"alertname": "HostDown|NodeDown"},
                  "kind": "host_down", "host": {"template": "{{ labels.openstack_host }}"}}
POWER_OFF_RULE = {"name": "bmc-powered-off", "source": "alertmanager",
                  "match": {"alertname": "ComputeNodePoweredOff"}, "kind": "power_off",
                  "host": {"template": "{{ labels.openstack_host }}"}}


def powered_off(host="compute-01", status="firing"):
    body = alert(host, status=status, fingerprint=f"off-{host}")
    body["alerts"][0]["labels"]["alertname"] = "ComputeNodePoweredOff"
    return body


@pytest.fixture
def alert_bridge(make_bridge, fake_nova):
    def make(rules=(HOST_DOWN_RULE, POWER_OFF_RULE)):
        return make_bridge(fake_nova, dry_run=False, nova={"cloud": "fake"}, rules=list(rules),
                           fencing={"methods": [{"driver": "alert", "timeout": 120}, MANUAL]})
    return make


@pytest.mark.parametrize("off_first", [False, True], ids=["alert-then-power-off", "power-off-then-alert"])
def test_a_power_off_alert_is_the_proof(alert_bridge, fake_nova, off_first):
    bridge = alert_bridge()
    bodies = [alert(), powered_off()]
    for body in reversed(bodies) if off_first else bodies:
        assert bridge.post_alert(body).status_code == 202
        bridge.settle()
    inc = bridge.only_incident()
    assert inc["state"] == sm.OUT_OF_SERVICE
    assert fake_nova.calls == [("force_down", "compute-01"), ("disable", "compute-01")]
    [ev] = inc["evidence"]
    assert (ev["kind"], ev["actor"], ev["id"]) == ("alert", "alertmanager alert off-compute-01", inc["proof_id"])
    assert ev["detail"]["rule"] == "bmc-powered-off"


def test_without_the_opt_in_rule_a_power_off_alert_proves_nothing(alert_bridge, fake_nova):
    bridge = alert_bridge(rules=[HOST_DOWN_RULE])
    bridge.post_alert(alert())
    bridge.post_alert(powered_off())
    bridge.settle()
    inc = bridge.only_incident()
    assert inc["state"] == sm.FENCING and inc["evidence"] == [] and fake_nova.calls == []


def test_a_power_off_alert_for_another_host_proves_nothing_here(alert_bridge, fake_nova):
    bridge = alert_bridge()
    bridge.post_alert(alert("compute-01"))
    bridge.post_alert(powered_off("compute-03"))
    bridge.settle()
    assert bridge.only_incident()["state"] == sm.FENCING and fake_nova.calls == []


# ---- the commands: check-config and fence test ---------------------------------------------

def test_check_config_reads_every_fencing_secret_and_names_the_key(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from bridge.cli import main
    from tests.harness.bridge_process import base_config

    monkeypatch.delenv("BMC_PW", raising=False)
    path = tmp_path / "bridge.yaml"
    path.write_text(yaml.safe_dump(base_config(tmp_path, fencing={"methods": [REDFISH, MANUAL]})))
    run = CliRunner().invoke(main, ["check-config", str(path)])
    assert run.exit_code == 1
    assert "fencing.methods[0].password: environment variable BMC_PW is not set or empty" in run.output
    monkeypatch.setenv("BMC_PW", PW)
    run = CliRunner().invoke(main, ["check-config", str(path)])
    assert run.exit_code == 0 and "fencing: redfish -> manual by default" in run.output and PW not in run.output
    agent = {"driver": "fence_agent", "address": "10.0.0.1", "options": {"agent": "fence_nosuchthing"}}
    path.write_text(yaml.safe_dump(base_config(tmp_path, fencing={"groups": {"g": {"methods": [agent]}}})))
    run = CliRunner().invoke(main, ["check-config", str(path)])
    assert run.exit_code == 1
    assert "fencing.groups.g.methods[0].options.agent: fence_nosuchthing is not installed" in run.output


def test_fence_test_reads_each_method_changes_nothing_and_fails_when_one_fails(tmp_path, power):
    from click.testing import CliRunner

    from bridge.cli import main
    from tests.harness.bridge_process import base_config

    path = tmp_path / "bridge.yaml"
    methods = [REDFISH, {**REDFISH, "address": "https://{{ nope }}"}, MANUAL]
    path.write_text(yaml.safe_dump(base_config(tmp_path, fencing={"methods": methods})))
    run = CliRunner().invoke(main, ["fence", "test", "compute-01", "--config", str(path)])
    lines = run.output.splitlines()
    assert run.exit_code == 1 and "1 fencing method(s) of compute-01 failed" in run.output
    assert lines[1].split()[:4] == ["1", "redfish", "https://compute-01-bmc.example", "on"]
    assert "'nope' is undefined" in lines[2] and "proof comes from a person" in lines[3]
    assert [c for c, _, _ in power.calls] == ["power_state"] and PW not in run.output
    power.reads["compute-01"] = []
    power.state["compute-01"] = "off"
    run = CliRunner().invoke(main, ["fence", "test", "compute-01", "--config", str(path)])
    assert " off " in run.output.splitlines()[1]
    ok = tmp_path / "ok.yaml"
    ok.write_text(yaml.safe_dump(base_config(tmp_path, fencing={"methods": [REDFISH]})))
    assert CliRunner().invoke(main, ["fence", "test", "compute-01", "--config", str(ok)]).exit_code == 0
