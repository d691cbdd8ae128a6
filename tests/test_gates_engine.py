"""The safety gates through the real engine and store (SQLite, and PostgreSQL with -m postgres),
against a fake Nova: what holds, what waits, what an approval releases, shadow mode."""

import copy
import os
import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge import incidents as sm
from bridge.engine import Engine
from bridge.nova import NovaError
from bridge.store.database import create_engine
from bridge.store.queries import Store
from tests.conftest import InProcessBridge, sample_json
from tests.fakes import FakeNova

HOSTS = [f"compute-{n:02d}" for n in range(1, 41)]
RACK = {h: f"r{(n // 10) + 1:02d}" for n, h in enumerate(HOSTS)}  # 4 racks of 10


def alerts(*hosts, alertname="HostDown", **labels):
    body = copy.deepcopy(sample_json("webhook_firing_api_v2.json"))
    template = body["alerts"][0]
    body["alerts"] = []
    for host in hosts:
        a = copy.deepcopy(template)
        a["labels"].update({"alertname": alertname, "openstack_host": host, "rack": RACK.get(host, host), **labels})
        a["fingerprint"] = f"fp-{alertname}-{host}"
        body["alerts"].append(a)
    return body


def by_host(bridge) -> dict[str, dict]:
    return {i["host"]: bridge.store.get_incident(i["id"]) for i in bridge.store.list_incidents(limit=1000)}


def gate_of(incident) -> str | None:
    holds = [t for t in incident["timeline"] if t["to_state"] == sm.HELD and t["from_state"] != sm.HELD]
    return holds[-1]["detail"].get("gate") if holds else None


@pytest.fixture
def fleet():
    return FakeNova(HOSTS)


@pytest.fixture
def gated(make_bridge, fleet):
    def make(**gates):
        return make_bridge(fleet, dry_run=False, nova={"cloud": "fake"}, gates=gates)
    return make


def test_thirty_of_forty_at_once_are_all_held_while_one_alone_proceeds(gated, fleet):
    bridge = gated(max_fraction=0.25)
    assert bridge.post_alert(alerts(*HOSTS[:30])).status_code == 202
    bridge.settle()
    incidents = by_host(bridge)
    assert len(incidents) == 30
    assert {i["state"] for i in incidents.values()} == {sm.HELD}
    assert {gate_of(i) for i in incidents.values()} == {"mass_limit"}
    assert "30 of 40 hosts down, more than the 10 allowed" in incidents["compute-01"]["last_error"]
    assert fleet.calls == []

    # the storm called off by a person, one host of forty alone goes on
    for inc in incidents.values():
        assert bridge.admin("POST", f"/v1/incidents/{inc['id']}/cancel", json={"reason": "switch back"}).status_code == 200
    bridge.post_alert(alerts(HOSTS[35]))
    bridge.settle()
    assert by_host(bridge)[HOSTS[35]]["state"] == sm.FENCING


def test_a_host_another_worker_took_in_counts_at_once_in_this_workers_fleet_view(gated, fleet):
    """A worker reuses its fleet view between steps, but never past a change another worker
    committed (here the view would otherwise be reused for an hour)."""
    bridge = gated(max_count=1, view_ttl=3600)
    other = Engine(bridge.config, Store(create_engine(bridge.config["database"]["url"])), fleet, clock=bridge.clock)
    bridge.post_alert(alerts(HOSTS[0]))
    bridge.settle()
    assert by_host(bridge)[HOSTS[0]]["state"] == sm.FENCING  # 1 down, 1 allowed
    assert bridge.engine.gating.fleet(bridge.clock()).down == 1  # this worker's view, as a step reads it
    bridge.post_alert(alerts(HOSTS[1]))
    assert other.intake_pending()  # the other worker takes it in; this worker is not told
    bridge.settle()
    second = by_host(bridge)[HOSTS[1]]
    assert second["state"] == sm.HELD and gate_of(second) == "mass_limit"
    assert "2 of 40 hosts down, more than the 1 allowed" in second["last_error"]
    assert [c for c in fleet.calls if HOSTS[1] in str(c)] == []


def test_an_approval_releases_exactly_the_approved_incident_and_gate(gated, fleet):
    bridge = gated(max_count=2, flapping={"changes": 1})
    bridge.post_alert(alerts(*HOSTS[:5]))
    bridge.settle()
    incidents = by_host(bridge)
    chosen = incidents["compute-03"]["id"]
    # first gate that holds is flapping (one report already counts): release it, mass_limit still holds
    assert gate_of(incidents["compute-03"]) == "flapping"
    answer = bridge.admin("POST", f"/v1/incidents/{chosen}/approve",
                          json={"gate": "flapping", "reason": "one report is no flap"})
    assert answer.status_code == 200, answer.json
    bridge.settle()
    assert gate_of(bridge.incident(chosen)) == "mass_limit"
    answer = bridge.admin("POST", f"/v1/incidents/{chosen}/approve",
                          json={"gate": "mass_limit", "reason": "rack r01 really lost power, ticket 42"})
    assert answer.status_code == 200
    bridge.settle()
    after = by_host(bridge)
    assert after["compute-03"]["state"] == sm.FENCING
    assert all(i["state"] == sm.HELD for h, i in after.items() if h != "compute-03")
    approved = [t for t in after["compute-03"]["timeline"] if t["actor"] == "ops"]
    assert [t["cause"] for t in approved] == [
        "approve gate flapping by ops: one report is no flap",
        "approve gate mass_limit by ops: rack r01 really lost power, ticket 42"]
    # only with proof does Nova move, approval or not
    bridge.confirm("compute-03")
    bridge.settle()
    assert fleet.calls == [("force_down", "compute-03"), ("disable", "compute-03")]


def test_approve_and_cancel_refuse_what_they_cannot_do(gated):
    bridge = gated(max_count=0)
    bridge.post_alert(alerts("compute-01"))
    bridge.settle()
    inc = bridge.only_incident()
    no_gate = bridge.admin("POST", f"/v1/incidents/{inc['id']}/approve", json={"reason": "x"})
    assert no_gate.status_code == 400 and no_gate.json["message"].startswith("gate: required, one of")
    proof = bridge.admin("POST", f"/v1/incidents/{inc['id']}/approve", json={"reason": "x", "gate": "fencing_proof"})
    assert proof.status_code == 400
    stray = bridge.admin("POST", f"/v1/incidents/{inc['id']}/retry", json={"reason": "x", "gate": "mass_limit"})
    assert stray.status_code == 400 and stray.json["message"] == "gate: only approve takes a gate, not retry"
    cancelled = bridge.admin("POST", f"/v1/incidents/{inc['id']}/cancel", json={"reason": "switch back"})
    assert cancelled.status_code == 200 and cancelled.json["state"] == sm.CANCELLED
    again = bridge.admin("POST", f"/v1/incidents/{inc['id']}/approve", json={"reason": "x", "gate": "mass_limit"})
    assert again.status_code == 409


def test_a_watchdog_gap_holds_everything_and_its_return_lets_new_incidents_go(gated, fleet):
    bridge = gated(watchdog={"match": {"alertname": "Watchdog"}, "max_age": 300})
    bridge.post_alert(alerts("compute-01"))
    bridge.settle()
    assert gate_of(bridge.only_incident()) == "watchdog"
    bridge.post_alert(alerts("watchdog", alertname="Watchdog"))
    bridge.post_alert(alerts("compute-02"))
    bridge.settle()
    assert by_host(bridge)["compute-02"]["state"] == sm.FENCING
    bridge.clock.advance(301)  # no Watchdog since
    bridge.post_alert(alerts("compute-04"))
    bridge.settle()
    assert gate_of(by_host(bridge)["compute-04"]) == "watchdog"
    ready = bridge.client.get("/readyz").json
    assert ready["observers"]["nova"] == "ok"


def test_a_switch_alert_holds_the_hosts_behind_it_only(gated):
    bridge = gated(failure_domain={"label": "rack"})
    bridge.config.data["rules"].append({"name": "tor-down", "source": "alertmanager", "match": {"alertname": "SwitchDown"},
                                        "kind": "upstream_down", "host": {"template": "{{ labels.rack }}"}})
    bridge.post_alert(alerts("r01-tor", alertname="SwitchDown", rack="r01"))
    bridge.post_alert(alerts("compute-02", "compute-15"))  # racks r01 and r02
    bridge.settle()
    incidents = by_host(bridge)
    assert gate_of(incidents["compute-02"]) == "upstream"
    assert "an upstream alert fires for r01" in incidents["compute-02"]["last_error"]
    assert incidents["compute-15"]["state"] == sm.FENCING


def test_nova_aggregates_are_failure_domains_with_their_own_limits(gated, fleet):
    # racks as aggregates rack-1..4 (10 hosts each); every host also in ha-hosts, which no limit counts
    for n, host in enumerate(HOSTS[:39]):
        fleet.aggregates[host] = ["ha-hosts", f"rack-{n // 10 + 1}"]
    bridge = gated(failure_domain={"nova": "aggregate", "match": "rack-[0-9]+"},
                   per_domain={"max_count": 2, "max_fraction": 0.5})
    bridge.post_alert(alerts(*HOSTS[:3], HOSTS[12], HOSTS[39]))  # 3 in rack-1, 1 in rack-2, 1 in none
    bridge.settle()
    incidents = by_host(bridge)
    assert {gate_of(incidents[h]) for h in HOSTS[:3]} == {"domain_limit"}
    assert "3 hosts down in failure domain rack-1, more than the 2 allowed" in incidents["compute-01"]["last_error"]
    assert incidents[HOSTS[12]]["state"] == sm.FENCING
    assert gate_of(incidents[HOSTS[39]]) == "domain_limit"  # in no rack aggregate: unknown, held
    assert "failure domain is unknown" in incidents[HOSTS[39]]["last_error"]
    with bridge.store.engine.connect() as conn:
        stored = dict(conn.execute(sa.text("select host, aggregate from compute_hosts")).all())
    assert stored["compute-01"] == "rack-1" and stored[HOSTS[39]] is None


def test_downtime_and_someone_elses_disable_hold_their_host(gated, fleet):
    bridge = gated()
    fleet.services["compute-05"].update(status="disabled", disabled_reason="kernel upgrade (bob)")
    bridge.post_alert(alerts("compute-03", downtime_depth="1"))
    bridge.post_alert(alerts("compute-05", "compute-06"))
    bridge.settle()
    incidents = by_host(bridge)
    assert gate_of(incidents["compute-03"]) == "maintenance"
    assert gate_of(incidents["compute-05"]) == "foreign_disable"
    assert incidents["compute-06"]["state"] == sm.FENCING


def test_nova_unreachable_holds_fencing_and_readyz_says_so(gated, fleet):
    bridge = gated()
    bridge.post_alert(alerts("compute-01"))
    bridge.settle()
    bridge.clock.advance(61)  # the inventory is old: the next alert refreshes it, and Nova fails
    fleet.fail_next("compute_services", NovaError("nova list services failed: ConnectFailure", []))
    bridge.post_alert(alerts("compute-02"))
    bridge.settle()
    held = by_host(bridge)["compute-02"]
    assert gate_of(held) == "nova_reachable" and "ConnectFailure" in held["last_error"]
    ready = bridge.client.get("/readyz")
    assert ready.status_code == 200 and ready.json["observers"]["nova"].startswith("unreachable: ")
    metrics = bridge.client.get("/metrics").get_data(as_text=True)
    assert 'hostdown_bridge_observer_up{observer="nova"} 0.0' in metrics
    assert 'hostdown_bridge_gate_fired_total{effect="hold",gate="nova_reachable"}' in metrics


def test_rate_limit_and_min_duration_make_incidents_wait_then_go_on_by_themselves(gated):
    bridge = gated(rate={"hosts": 1, "window": 600}, min_duration=60, recheck=30)
    bridge.post_alert(alerts("compute-01", "compute-02"))
    bridge.settle()
    assert {i["state"] for i in by_host(bridge).values()} == {sm.SUSPECTED}  # debounce
    bridge.clock.advance(60)
    bridge.settle()
    states = sorted(i["state"] for i in by_host(bridge).values())
    assert states == [sm.FENCING, sm.SUSPECTED]  # one start per window
    second = next(h for h, i in by_host(bridge).items() if i["state"] == sm.SUSPECTED)
    bridge.clock.advance(601)  # the window has passed the first start
    bridge.settle()
    assert by_host(bridge)[second]["state"] == sm.FENCING


def waits(incident) -> list[str]:
    return [t["detail"]["gate"] for t in incident["timeline"] if t["detail"].get("waiting")]


def test_a_wait_is_on_the_timeline_once_per_change_of_gate_not_per_poll(gated):
    bridge = gated(rate={"hosts": 1, "window": 600}, min_duration=60, recheck=30)
    bridge.post_alert(alerts("compute-01", "compute-02"))
    bridge.settle()
    for _ in range(3):  # polls while the debounce lasts
        bridge.clock.advance(15)
        bridge.settle()
    assert {h: waits(i) for h, i in by_host(bridge).items()} == {"compute-01": ["min_duration"],
                                                                  "compute-02": ["min_duration"]}
    bridge.clock.advance(15)
    bridge.settle()
    second = next(h for h, i in by_host(bridge).items() if i["state"] == sm.SUSPECTED)
    for _ in range(4):  # the rate limit looks again every 30 s
        bridge.clock.advance(30)
        bridge.settle()
    inc = by_host(bridge)[second]
    assert waits(inc) == ["min_duration", "rate_limit"]
    wait = [t for t in inc["timeline"] if t["detail"].get("waiting")][-1]
    assert (wait["from_state"], wait["to_state"]) == (sm.SUSPECTED, sm.SUSPECTED)
    assert wait["cause"].startswith("gate rate_limit: 1 fencing starts within 600s") and wait["detail"]["until"]
    shown = bridge.admin("GET", f"/v1/incidents/{inc['id']}").get_json()
    assert waits(shown) == ["min_duration", "rate_limit"]


def test_the_storm_cooldown_survives_a_restart(gated, fleet, make_bridge):
    bridge = gated(max_count=2, storm_cooldown=300)
    bridge.post_alert(alerts(*HOSTS[:3]))
    bridge.settle()
    assert {gate_of(i) for i in by_host(bridge).values()} == {"mass_limit"}
    for inc in by_host(bridge).values():
        bridge.admin("POST", f"/v1/incidents/{inc['id']}/cancel", json={"reason": "switch back"})
    # a new process on the same database (or another replica): it remembers the storm
    again = make_bridge(fleet, dry_run=False, nova={"cloud": "fake"}, gates={"max_count": 2, "storm_cooldown": 300})
    again.clock.advance(100)
    again.post_alert(alerts("compute-10"))
    again.settle()
    inc = by_host(again)["compute-10"]
    assert inc["state"] == sm.SUSPECTED and waits(inc) == ["storm_cooldown"]
    assert "a storm was seen at 2026-11-24T12:00:00+00:00" in inc["timeline"][-1]["cause"]
    again.clock.advance(201)
    again.settle()
    assert by_host(again)["compute-10"]["state"] == sm.FENCING


def test_shadow_mode_changes_nothing_and_records_the_plan(make_bridge, fleet):
    bridge = make_bridge(fleet, dry_run=False, nova={"cloud": "fake"}, mode="shadow",
                         gates={"max_count": 1})
    bridge.post_alert(alerts("compute-01"))
    bridge.settle()
    bridge.confirm("compute-01")
    bridge.settle()
    inc = bridge.only_incident()
    assert inc["state"] == sm.HELD and gate_of(inc) == "shadow" and fleet.calls == []
    plan = next(t for t in inc["timeline"] if t["cause"].startswith("shadow: "))
    assert plan["cause"] == ("shadow: would fence it with driver manual, then nova force_down, then nova disable "
                             "on compute-01")
    assert plan["detail"]["nova"]["call"] == "force_down" and plan["detail"]["nova"]["dry_run"]
    shown = bridge.admin("GET", f"/v1/incidents/{inc['id']}")  # the plan names a driver, yet is no attempt
    assert shown.status_code == 200 and shown.get_json()["attempts"] == []
    bridge.post_alert(alerts("compute-02"))  # two down: which gate would have fired
    bridge.settle()
    assert gate_of(by_host(bridge)["compute-02"]) == "mass_limit" and fleet.calls == []


# ---- the store: whatever people and alerts do, one open incident per host, none lost ----

OPS = st.one_of(
    st.tuples(st.just("fire"), st.sampled_from(HOSTS[:2])),
    st.tuples(st.just("resolve"), st.sampled_from(HOSTS[:2])),
    st.tuples(st.sampled_from(["retry", "close", "cancel", "approve"]), st.sampled_from(HOSTS[:2])),
    st.tuples(st.just("storm"), st.booleans()),
    st.tuples(st.just("tick"), st.sampled_from([1, 301])),
)


@settings(max_examples=int(os.environ.get("STORE_EXAMPLES", "25")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OPS, min_size=1, max_size=12))
def test_random_operations_keep_one_open_incident_per_host_and_lose_none(ops):
    with tempfile.TemporaryDirectory() as tmp:
        bridge = InProcessBridge(Path(tmp), FakeNova(HOSTS), dry_run=False, nova={"cloud": "fake"},
                                 gates={"max_count": 1})
        try:
            for op, arg in ops:
                if op in ("fire", "resolve"):
                    body = alerts(arg)
                    body["alerts"][0]["status"] = "firing" if op == "fire" else "resolved"
                    bridge.post_alert(body)
                elif op == "storm":  # a third host down too: over max_count
                    body = alerts("compute-40")
                    body["alerts"][0]["status"] = "firing" if arg else "resolved"
                    bridge.post_alert(body)
                elif op == "tick":
                    bridge.clock.advance(arg)
                else:
                    inc = bridge.store.open_incident_for(arg)
                    if inc is not None:
                        extra = {"gate": "mass_limit"} if op == "approve" else {}
                        bridge.admin("POST", f"/v1/incidents/{inc['id']}/{op}", json={"reason": "r", **extra})
                bridge.settle()
                every = bridge.store.list_incidents(limit=1000)
                open_hosts = [i["host"] for i in every if i["closed_at"] is None]
                assert len(open_hosts) == len(set(open_hosts))
                for inc in every:  # ended only by a person, or by its alerts resolving before fencing
                    if inc["closed_at"] is not None:
                        ends = [t for t in bridge.incident(inc["id"])["timeline"]
                                if t["to_state"] == inc["state"] != t["from_state"]]  # not notes made since
                        assert ends and (ends[-1]["actor"] == "ops" or ends[-1]["cause"].startswith("every alert"))
        finally:
            bridge.store.engine.dispose()


def test_a_pause_lets_work_in_flight_finish_starts_nothing_new_and_survives_a_restart(gated, fleet, make_bridge):
    bridge = gated()
    bridge.post_alert(alerts("compute-01"))
    bridge.settle()
    paused = bridge.admin("POST", "/v1/pause", json={"reason": "switch firmware rollout"})
    assert paused.status_code == 200 and paused.json["paused"]
    assert paused.json["detail"].startswith("paused by ops at ") and "switch firmware rollout" in paused.json["detail"]
    bridge.clock.advance(2)
    bridge.post_alert(alerts("compute-02"))
    bridge.confirm("compute-01")  # in flight: it finishes
    bridge.settle()
    incidents = by_host(bridge)
    assert incidents["compute-01"]["state"] == sm.OUT_OF_SERVICE and incidents["compute-02"]["state"] == sm.SUSPECTED
    ready = bridge.client.get("/readyz").json
    assert ready["status"] == "ready" and ready["observers"]["pause"].startswith("paused by ops")
    assert 'hostdown_bridge_observer_up{observer="pause"} 0.0' in bridge.client.get("/metrics").get_data(as_text=True)

    restarted = gated()  # a new engine and app on the same database: still paused
    restarted.clock.advance(30)
    restarted.settle()
    assert by_host(restarted)["compute-02"]["state"] == sm.SUSPECTED
    assert restarted.admin("GET", "/v1/pause").json["paused"]
    assert restarted.admin("POST", "/v1/resume", json={"reason": "done"}).json == {"paused": False, "detail": None}
    restarted.clock.advance(30)
    restarted.settle()
    assert by_host(restarted)["compute-02"]["state"] == sm.FENCING


def test_retention_deletes_an_old_incident_with_its_approvals(gated):
    from bridge.store.retention import Retention, prune
    from bridge.store.tables import approvals

    bridge = gated(max_count=0)
    bridge.post_alert(alerts("compute-01"))
    bridge.settle()
    inc = bridge.only_incident()
    bridge.admin("POST", f"/v1/incidents/{inc['id']}/approve", json={"gate": "burst", "reason": "r"})
    bridge.admin("POST", f"/v1/incidents/{inc['id']}/close", json={"reason": "done"})
    done = prune(bridge.store.engine, Retention(1, 1), bridge.clock() + timedelta(days=2))
    assert done["incidents"] == 1
    with bridge.store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(approvals)).scalar() == 0


def test_a_claimed_step_reads_the_hosts_view_once_and_again_if_an_alert_came_meanwhile(gated, monkeypatch):
    """The engine looks at a suspected incident, then takes its lease to start fencing: the
    host's view read for the look serves the claim unless the incident changed in between.
    Here a second report between the look and the claim makes it flap: held, not fenced."""
    from bridge import gating

    views = []
    read_view = gating.reads.host_view
    monkeypatch.setattr(gating.reads, "host_view", lambda *args: views.append(args[1]) or read_view(*args))
    bridge = gated(flapping={"changes": 2, "window": 600})
    bridge.post_alert(alerts("compute-01"))
    bridge.settle()
    assert by_host(bridge)["compute-01"]["state"] == sm.FENCING
    assert len(views) == 1  # the look and the claim: one read

    claim = bridge.store.claim

    def alert_then_claim(*args, **kwargs):
        monkeypatch.setattr(bridge.store, "claim", claim)
        bridge.post_alert(alerts("compute-02", alertname="NodeDown"))
        bridge.engine.intake_pending()
        return claim(*args, **kwargs)

    bridge.post_alert(alerts("compute-02"))
    bridge.engine.intake_pending()
    monkeypatch.setattr(bridge.store, "claim", alert_then_claim)
    bridge.settle()
    held = by_host(bridge)["compute-02"]
    assert (held["state"], gate_of(held)) == (sm.HELD, "flapping")
    assert views.count(held["id"]) >= 2
