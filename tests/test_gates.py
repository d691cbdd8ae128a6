"""The safety gates, pure: each one's verdict, and how decide() holds, waits or goes on."""

import dataclasses
from datetime import datetime, timedelta, timezone

import pytest

from bridge import gates
from bridge import incidents as sm
from bridge.effects import FenceRequest, Outcome
from bridge.gates import Fleet, HostView, Limits, Matcher, Silence
from bridge.incidents import Facts, Incident, OperatorAction, Policy, Signals, decide

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)


def facts(limits=Limits(), fleet=Fleet(), host=HostView(), approvals=(), firing=None, state=sm.SUSPECTED, **kw):
    return Facts(now=NOW, incident=Incident(1, "compute-01", state, False, resume_state=kw.pop("resume", None)),
                 signals=Signals(firing if firing is not None else {"alertmanager": 1}),
                 policy=Policy(gates=limits), fleet=fleet, host=host, approvals=frozenset(approvals), **kw)


def test_by_default_every_gate_passes_and_fencing_starts():
    decision = decide(facts())
    assert decision.effect == FenceRequest("compute-01")
    assert all(gate(facts()).passed for gate in gates.BEFORE_FENCING)


@pytest.mark.parametrize("limits, fleet, held", [
    (Limits(max_count=10), Fleet(hosts=40, down=30), True),
    (Limits(max_count=10), Fleet(hosts=40, down=10), False),
    (Limits(max_fraction=0.25), Fleet(hosts=40, down=30), True),
    (Limits(max_fraction=0.25), Fleet(hosts=40, down=1), False),
    (Limits(max_fraction=0.25), Fleet(hosts=None, down=1), True),  # cannot tell: fail closed
    (Limits(max_count=100, max_fraction=0.1), Fleet(hosts=100, down=11), True),  # the smaller bound
])
def test_mass_limit_counts_every_open_incident_against_count_and_fraction(limits, fleet, held):
    decision = decide(facts(limits, fleet))
    if held:
        assert decision.to_state == sm.HELD and decision.detail["gate"] == "mass_limit"
        assert decision.cause.startswith("gate mass_limit:") and decision.resume_state == sm.SUSPECTED
    else:
        assert isinstance(decision.effect, FenceRequest)


def test_domain_limit_holds_a_domain_over_its_limit_not_another():
    limits = Limits(domain_max_count=5)
    fleet = Fleet(hosts=2000, down=41, domain_down={"r01": 40, "r02": 1})
    assert decide(facts(limits, fleet, HostView(domain="r01"))).detail["gate"] == "domain_limit"
    assert isinstance(decide(facts(limits, fleet, HostView(domain="r02"))).effect, FenceRequest)
    assert decide(facts(limits, fleet, HostView(domain=None))).to_state == sm.HELD  # unknown: closed
    zone = Limits(domain_max_fraction=0.5)
    assert decide(facts(zone, Fleet(domain_hosts={"az1": 4}, domain_down={"az1": 3}),
                        HostView(domain="az1"))).to_state == sm.HELD


def test_rate_limit_and_storm_cooldown_wait_rather_than_hold():
    limits = Limits(rate_hosts=2, rate_window=60, recheck=10)
    waiting = decide(facts(limits, Fleet(started=2)))
    assert waiting.to_state is None and waiting.effect is None and waiting.due_at == NOW + timedelta(seconds=10)
    assert waiting.detail == {"gate": "rate_limit", "waiting": True}
    assert isinstance(decide(facts(limits, Fleet(started=1))).effect, FenceRequest)
    cool = Limits(storm_cooldown=300)
    storm = NOW - timedelta(seconds=100)
    waiting = decide(facts(cool, Fleet(over_limit_at=storm)))
    assert waiting.to_state is None and waiting.due_at == storm + timedelta(seconds=300)
    assert isinstance(decide(facts(cool, Fleet(over_limit_at=NOW - timedelta(seconds=301)))).effect, FenceRequest)


def test_debounce_corroboration_and_nova_heartbeat_wait_for_their_condition():
    opened = NOW - timedelta(seconds=30)
    debounce = decide(facts(Limits(min_duration=60), host=HostView(opened_at=opened)))
    assert debounce.due_at == opened + timedelta(seconds=60) and debounce.detail["gate"] == "min_duration"
    assert isinstance(decide(facts(Limits(min_duration=20), host=HostView(opened_at=opened))).effect, FenceRequest)
    two = Limits(min_sources=2)
    assert decide(facts(two, firing={"alertmanager": 3, "zabbix": 0})).detail["gate"] == "corroboration"
    assert isinstance(decide(facts(two, firing={"alertmanager": 1, "zabbix": 1})).effect, FenceRequest)
    beat = Limits(nova_heartbeat_age=120)
    fresh = HostView(service={"updated_at": NOW - timedelta(seconds=200)}, service_read_at=NOW - timedelta(seconds=150))
    # 50 s old when Nova was read (a later read may show it older): not yet
    assert decide(facts(beat, host=fresh)).detail["gate"] == "nova_heartbeat"
    old = dataclasses.replace(fresh, service_read_at=NOW)
    assert isinstance(decide(facts(beat, host=old)).effect, FenceRequest)
    assert decide(facts(beat)).detail["gate"] == "nova_heartbeat"  # nothing read: waits


@pytest.mark.parametrize("limits, fleet, host, gate", [
    (Limits(flap_changes=4), Fleet(), HostView(changes=4), "flapping"),
    (Limits(watchdog_max_age=300), Fleet(heartbeat_at=NOW - timedelta(seconds=301)), HostView(), "watchdog"),
    (Limits(watchdog_max_age=300), Fleet(heartbeat_at=None), HostView(), "watchdog"),
    (Limits(burst_count=20), Fleet(opened=20), HostView(), "burst"),
    (Limits(), Fleet(nova_ok=False, nova_error="connect timeout"), HostView(), "nova_reachable"),
    (Limits(), Fleet(upstream_down=frozenset({"r01"})), HostView(domain="r01"), "upstream"),
    (Limits(), Fleet(), HostView(labels=({"downtime_depth": "1"},)), "maintenance"),
    (Limits(), Fleet(), HostView(labels=({"maintenance": "1"},)), "maintenance"),
    (Limits(), Fleet(zabbix_maintenance={"compute-01": "kernel update"}), HostView(), "maintenance"),
    (Limits(), Fleet(zabbix_maintenance={"zbx-c01": "kernel update"}), HostView(labels=({"host": "zbx-c01"},)),
     "maintenance"),
    (Limits(silences=True), Fleet(silences=None), HostView(), "silenced"),
    (Limits(silences=True), Fleet(silences=(Silence("s1", (Matcher("instance", "compute-0[12]", is_regex=True),)),)),
     HostView(labels=({"instance": "compute-01"},)), "silenced"),
    (Limits(), Fleet(), HostView(service={"status": "disabled", "disabled_reason": "maintenance by bob"}),
     "foreign_disable"),
])
def test_each_hold_names_its_gate_on_the_timeline(limits, fleet, host, gate):
    decision = decide(facts(limits, fleet, host))
    assert decision.to_state == sm.HELD and decision.detail == {"gate": gate}
    assert decision.cause.startswith(f"gate {gate}: ") and decision.last_error == decision.cause


@pytest.mark.parametrize("limits, fleet, host", [
    (Limits(watchdog_max_age=300), Fleet(heartbeat_at=NOW - timedelta(seconds=10)), HostView()),
    (Limits(), Fleet(nova_ok=None), HostView()),  # no cloud: dry-run only, nothing to hold
    (Limits(), Fleet(upstream_down=frozenset({"r02"})), HostView(domain="r01")),
    (Limits(), Fleet(), HostView(labels=({"downtime_depth": "0", "maintenance": "false"},))),
    (Limits(), Fleet(zabbix_maintenance={"compute-02": "racking"}), HostView(labels=({"host": "compute-03"},))),
    (Limits(), Fleet(zabbix_maintenance=None), HostView()),  # Zabbix's API unreadable: fail open
    (Limits(maintenance=False), Fleet(zabbix_maintenance={"compute-01": "kernel update"}), HostView()),
    (Limits(silences=True), Fleet(silences=(Silence("s1", (Matcher("instance", "compute-01", is_equal=False),)),)),
     HostView(labels=({"instance": "compute-01"},))),
    (Limits(), Fleet(), HostView(service={"status": "disabled",
                                          "disabled_reason": "nova-hostdown-bridge: incident 3, host down"})),
    (Limits(upstream=False, maintenance=False, foreign_disable=False, nova_reachable=False),
     Fleet(upstream_down=frozenset({"r01"}), nova_ok=False),
     HostView(domain="r01", labels=({"downtime_depth": "2"},), service={"status": "disabled"})),
])
def test_gates_that_see_nothing_wrong_pass(limits, fleet, host):
    assert isinstance(decide(facts(limits, fleet, host)).effect, FenceRequest)


def test_an_approval_releases_only_the_gate_it_names():
    limits = Limits(max_count=1, flap_changes=2)
    both = facts(limits, Fleet(down=5), HostView(changes=3))
    assert decide(both).detail["gate"] == "flapping"
    assert decide(dataclasses.replace(both, approvals=frozenset({"flapping"}))).detail["gate"] == "mass_limit"
    released = dataclasses.replace(both, approvals=frozenset({"flapping", "mass_limit"}))
    assert isinstance(decide(released).effect, FenceRequest)
    # fencing proof is no gate a person can approve
    assert "fencing_proof" not in gates.APPROVABLE


def test_the_outcome_of_the_fence_request_is_checked_against_the_same_gates():
    held = facts(Limits(max_count=1), Fleet(down=2))
    decision = decide(dataclasses.replace(held, outcome=Outcome(FenceRequest("compute-01"), "asked")))
    assert decision.to_state is None and "ignored" in decision.cause  # the gate now holds: no fencing


def test_approve_resumes_a_held_incident_and_is_recorded_on_any_other_open_one():
    approve = OperatorAction(sm.APPROVE, "ops", "rack r01 is really down", gate="domain_limit")
    resumed = decide(facts(state=sm.HELD, resume=sm.SUSPECTED, action=approve))
    assert resumed.to_state == sm.SUSPECTED and "approve gate domain_limit by ops" in resumed.cause
    noted = decide(facts(state=sm.SUSPECTED, action=approve))
    assert noted.to_state is None and noted.refused is None
    bad = decide(facts(state=sm.HELD, action=dataclasses.replace(approve, gate="fencing_proof")))
    assert bad.refused and "cannot be approved" in bad.refused
    assert decide(facts(state=sm.CLOSED, action=approve)).refused


def test_cancel_only_before_fencing_proof():
    cancel = OperatorAction(sm.CANCEL, "ops", "the switch is back")
    assert decide(facts(state=sm.HELD, action=cancel)).to_state == sm.CANCELLED
    assert decide(facts(state=sm.SUSPECTED, action=cancel)).to_state == sm.CANCELLED
    fenced = Facts(now=NOW, incident=Incident(1, "compute-01", sm.HELD, False, proof_id=4), action=cancel)
    assert "fencing proof" in decide(fenced).refused
    assert decide(facts(state=sm.OUT_OF_SERVICE, action=cancel)).refused


def test_a_shadow_outcome_holds_with_the_plan():
    effect = FenceRequest("compute-01")
    plan = {"shadow": True, "would": ["fence", "force_down", "disable"], "driver": "manual"}
    decision = decide(dataclasses.replace(facts(), outcome=Outcome(effect, "shadow: would fence", plan, shadow=True)))
    assert decision.to_state == sm.HELD and decision.detail["gate"] == "shadow"
    assert decision.detail["would"] == ["fence", "force_down", "disable"] and "shadow mode" in decision.cause


def test_limits_from_the_default_config_turn_off_what_needs_fleet_numbers():
    from bridge.config import validate
    limits = Limits.from_config(validate({}))
    assert limits.max_count is None and limits.max_fraction is None and limits.rate_hosts is None
    assert limits.nova_reachable and limits.upstream and limits.maintenance and limits.foreign_disable
    assert not limits.silences and limits.watchdog_max_age is None


class FakeZabbixAPI:
    """Zabbix's JSON-RPC API as ZabbixMaintenance calls it: host.get, then maintenance.get."""

    def __init__(self, hosts, maintenances, error=None):
        self.hosts, self.maintenances, self.error, self.calls = hosts, maintenances, error, []

    def __call__(self, url, json, timeout):
        self.calls.append((json["method"], json["params"], json["auth"]))
        if self.error:
            result = {"error": {"code": -32602, "message": "Invalid params.", "data": self.error}}
        elif json["method"] == "host.get":
            assert json["params"]["filter"] == {"maintenance_status": "1"}
            result = {"result": self.hosts}
        else:
            result = {"result": [m for m in self.maintenances if m["maintenanceid"] in json["params"]["maintenanceids"]]}

        class Answer:
            def raise_for_status(self):
                pass

            def json(self):
                return {"jsonrpc": "2.0", "id": 1, **result}
        return Answer()


def test_zabbix_maintenance_names_each_host_in_maintenance_and_none_when_unreadable():
    from bridge.gating import ZabbixMaintenance
    api = FakeZabbixAPI([{"hostid": "10", "host": "compute-01", "maintenanceid": "3"}],
                        [{"maintenanceid": "3", "name": "kernel update"}])
    reader = ZabbixMaintenance({"url": "http://zabbix/api_jsonrpc.php", "cache": 60}, "tok", post=api)
    assert reader.current() == {"compute-01": "kernel update"}
    assert reader.current() == {"compute-01": "kernel update"} and len(api.calls) == 2  # cached
    assert api.calls[0][2] == "tok"
    empty = FakeZabbixAPI([], [])
    assert ZabbixMaintenance({"url": "http://z/api_jsonrpc.php"}, "tok", post=empty).current() == {}
    assert [c[0] for c in empty.calls] == ["host.get"]
    refused = FakeZabbixAPI([], [], error="Not authorised.")
    assert ZabbixMaintenance({"url": "http://z/api_jsonrpc.php"}, "bad", post=refused).current() is None
