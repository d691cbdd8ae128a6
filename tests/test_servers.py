"""The failed host's servers, by policy, against a fake Nova: plan(), the per-server rows, the
evacuation's lock/unlock and retries, nothing issued twice, and the return to service."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from bridge import incidents as sm, servers as sv
from bridge.effects import IssueServerRequests
from bridge.executor import Executor
from bridge.fencing import DRIVERS
from bridge.incidents import Facts, Incident, Policy
from bridge.nova import NovaError
from bridge.servers import Found, HostFacts, ServersPolicy
from tests.test_engine import alert

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
HOST = "compute-01"
HA = {"HA_Enabled": "True"}


def found(server_id, vm_state="active", task_state=None, **metadata) -> Found:
    return Found(server_id, server_id, vm_state, task_state, HOST, metadata=metadata, host_status="DOWN")


def by_id(rows):
    return {r.server_id: r for r in rows}


# ---- plan(): which policy each server gets ---------------------------------------------------

def test_protected_vm_states_are_never_touched_whatever_the_policy():
    servers = [found(s, vm_state=s, **HA) for s in ("soft-delete", "deleted", "resized", "error")]
    rows = sv.plan(ServersPolicy(policy=sv.EVACUATE), HostFacts(HOST), servers, NOW)
    assert {(r.action, r.status) for r in rows} == {(sv.SKIP, sv.SKIPPED)}
    assert all("never touched" in r.detail["why"] for r in rows)


def test_evacuate_moves_only_the_opted_in_in_priority_order_the_others_get_the_others_policy():
    policy = ServersPolicy(policy=sv.EVACUATE, opt_in=sv.OptIn(metadata=HA), others=sv.ERROR,
                           target_hosts=("spare-1", "spare-2"))
    servers = [found("low", **HA), found("plain"), found("high", HA_Priority="9", **HA),
               found("bad-priority", HA_Priority="urgent", **HA)]
    rows = sv.plan(policy, HostFacts(HOST), servers, NOW)
    assert [(r.server_id, r.action) for r in rows] == [
        ("high", sv.EVACUATE), ("bad-priority", sv.EVACUATE), ("low", sv.EVACUATE), ("plain", sv.ERROR)]
    assert [r.target_host for r in rows] == ["spare-1", "spare-2", "spare-1", None]  # reserved hosts in turn
    assert by_id(rows)["bad-priority"].detail["ignored_priority"] == "urgent"
    assert by_id(rows)["plain"].detail["why"] == "not opted in to evacuation"


def test_groups_then_server_metadata_override_the_global_policy():
    policy = ServersPolicy(policy=sv.NONE, groups=(sv.Group(sv.ERROR, zone="az9"),
                                                   sv.Group(sv.EVACUATE, aggregate="ha-hosts")),
                           opt_in=sv.OptIn(all=True))
    servers = [found("a"), found("b", hostdown_policy="none"), found("c", hostdown_policy="reboot")]
    rows = by_id(sv.plan(policy, HostFacts(HOST, "nova", ("ha-hosts",)), servers, NOW))
    assert rows["a"].action == sv.EVACUATE and rows["a"].detail["why"] == "opted in: all servers"
    assert rows["b"].action == sv.NONE and rows["b"].status == sv.DONE  # verified: host_status DOWN
    assert rows["c"].action == sv.EVACUATE and "is not one of" in rows["c"].detail["ignored"]
    in_az9 = by_id(sv.plan(policy, HostFacts(HOST, "az9", ("ha-hosts",)), [found("a")], NOW))
    assert in_az9["a"].action == sv.ERROR


def test_a_group_by_rule_matches_when_that_rule_mapped_one_of_the_incidents_alerts():
    policy = ServersPolicy(policy=sv.NONE, groups=(sv.Group(sv.ERROR, rule="nagios-host-down"),
                                                   sv.Group(sv.EVACUATE, rule="compute-host-down", zone="az9")),
                           opt_in=sv.OptIn(all=True))

    def action(**facts):
        return sv.plan(policy, HostFacts(HOST, **facts), [found("a")], NOW)[0].action
    assert action(rules=("compute-host-down", "nagios-host-down")) == sv.ERROR
    assert action(zone="az9", rules=("compute-host-down",)) == sv.EVACUATE
    assert action(zone="nova", rules=("compute-host-down",)) == sv.NONE  # every key given must match
    assert action() == sv.NONE


def test_opt_in_by_flavor_extra_specs_image_properties_or_aggregate():
    opt = sv.OptIn(metadata={}, flavor_extra_specs={"ha:enabled": "true"}, image_properties={"ha": "yes"},
                   aggregates=("ha-hosts",))
    flavored = Found("f", "f", "active", None, HOST, flavor_extra_specs={"ha:enabled": "true"}, image_id="i1")
    imaged = Found("i", "i", "active", None, HOST, image_id="i2")
    plain = Found("p", "p", "active", None, HOST, image_id="i1")
    rows = by_id(sv.plan(ServersPolicy(policy=sv.EVACUATE, opt_in=opt), HostFacts(HOST),
                         [flavored, imaged, plain], NOW, {"i1": {}, "i2": {"ha": "yes"}}))
    assert {k: r.action for k, r in rows.items()} == {"f": sv.EVACUATE, "i": sv.EVACUATE, "p": sv.NONE}
    in_aggregate = sv.plan(ServersPolicy(policy=sv.EVACUATE, opt_in=opt), HostFacts(HOST, None, ("ha-hosts",)),
                           [plain], NOW)
    assert in_aggregate[0].action == sv.EVACUATE and in_aggregate[0].detail["why"] == "opted in: host aggregate"


def test_policy_none_verifies_host_status_down_and_fails_the_row_if_nova_still_says_up():
    up = Found("u", "u", "active", None, HOST, host_status="UP")
    rows = by_id(sv.plan(ServersPolicy(), HostFacts(HOST), [found("d"), up], NOW))
    assert (rows["d"].status, rows["d"].detail["host_status"]) == (sv.DONE, "DOWN")
    assert rows["u"].status == sv.FAILED and "host_status 'UP'" in rows["u"].error


def test_a_task_in_flight_is_recorded_and_acted_on_or_skipped_as_configured():
    busy = found("busy", task_state="powering-off", **HA)
    acted = sv.plan(ServersPolicy(policy=sv.EVACUATE), HostFacts(HOST), [busy], NOW)[0]
    assert (acted.action, acted.status, acted.detail["task_in_flight"]) == (sv.EVACUATE, sv.PENDING, "powering-off")
    skipped = sv.plan(ServersPolicy(policy=sv.EVACUATE, task_in_flight="skip"), HostFacts(HOST), [busy], NOW)[0]
    assert skipped.status == sv.SKIPPED and "task powering-off in flight" in skipped.detail["why"]


def test_next_issue_keeps_the_in_flight_bound_and_the_batch_size():
    rows = [sv.ServerAction(f"s{i}", action=sv.EVACUATE) for i in range(5)]
    rows[0] = sv.ServerAction("s0", action=sv.EVACUATE, status=sv.REQUESTED)
    assert sv.next_issue(rows, ServersPolicy(max_in_flight=3)) == ("s1", "s2")
    many = [sv.ServerAction(f"e{i}", action=sv.ERROR) for i in range(50)]
    assert len(sv.next_issue(many, ServersPolicy(concurrency=2))) == 2 * sv.ROUNDS_PER_BATCH


# ---- the engine with a fake Nova -------------------------------------------------------------

def bridge_with(make_bridge, fake_nova, **servers_cfg):
    cfg = {"policy": "evacuate", "poll_interval": 2, **servers_cfg}
    return make_bridge(fake_nova, dry_run=False, nova={"cloud": "fake"}, servers=cfg)


def run(bridge) -> None:
    """Settle, again and again: a server step that moves rows but not the incident is due at once,
    and settle() stops after a round with no transition."""
    for _ in range(6):
        bridge.settle()


def fenced(bridge, host=HOST) -> dict:
    bridge.post_alert(alert(host))
    bridge.confirm(host)
    run(bridge)
    return bridge.only_incident()


def poll(bridge, fake_nova, **finish) -> dict:
    fake_nova.compute.finish(**finish)
    bridge.clock.advance(2)
    run(bridge)
    return bridge.only_incident()


def rows_of(inc) -> dict:
    return {r["server_id"]: r for r in inc["servers"]}


def test_evacuate_locks_moves_restops_and_unlocks_only_what_the_bridge_locked(make_bridge, fake_nova):
    c = fake_nova.compute
    c.add("web", HOST, metadata=HA)
    c.add("db", HOST, vm_state="stopped", metadata={**HA, "HA_Priority": "5"})
    c.add("mine", HOST, metadata=HA, locked=True, locked_reason="user: maintenance")
    c.add("plain", HOST)
    c.add("broken", HOST, vm_state="error", metadata=HA)
    c.add("elsewhere", "compute-03", metadata=HA)
    bridge = bridge_with(make_bridge, fake_nova)
    inc = fenced(bridge)
    assert inc["state"] == sm.SERVERS
    assert [a for a in c.actions if a[1] == "db"] == [("lock", "db"), ("evacuate", "db")]  # priority 5 first
    assert c.actions[0] == ("lock", "db")
    assert ("lock", "mine") not in c.actions and ("evacuate", "mine") in c.actions
    assert not {s for _, s in c.actions} & {"plain", "broken", "elsewhere"}

    inc = poll(bridge, fake_nova)
    assert inc["state"] == sm.OUT_OF_SERVICE and inc["last_error"] is None
    rows = rows_of(inc)
    assert {k: (r["action"], r["status"]) for k, r in rows.items()} == {
        "web": (sv.EVACUATE, sv.DONE), "db": (sv.EVACUATE, sv.DONE), "mine": (sv.EVACUATE, sv.DONE),
        "plain": (sv.NONE, sv.DONE), "broken": (sv.SKIP, sv.SKIPPED)}
    assert rows["db"]["result_host"] != HOST and c.servers["db"]["vm_state"] == "stopped"
    assert c.servers["mine"]["locked"] and c.servers["mine"]["locked_reason"] == "user: maintenance"
    assert rows["mine"]["user_locked"] and not rows["mine"]["locked_by_bridge"]
    assert not c.servers["web"]["locked"] and ("unlock", "web") in c.actions and ("unlock", "mine") not in c.actions
    assert [m["server"] for m in c.migrations].count("web") == 1
    assert "servers: 3 evacuate done, 1 none done, 1 skip skipped" in inc["timeline"][-1]["cause"]
    metrics = bridge.client.get("/metrics").get_data(as_text=True)
    assert 'hostdown_bridge_server_actions{action="evacuate",status="done"} 3.0' in metrics
    shown = bridge.admin("GET", f"/v1/incidents/{inc['id']}").json["servers"]
    assert [r["name"] for r in shown] == ["db", "broken", "mine", "plain", "web"]  # plan order: priority, name


def test_closing_mid_evacuation_unlocks_only_what_the_bridge_locked(make_bridge, fake_nova):
    c = fake_nova.compute
    c.add("web", HOST, metadata=HA)
    c.add("mine", HOST, metadata=HA, locked=True, locked_reason="user: maintenance")
    c.add("early", HOST, metadata=HA)
    bridge = bridge_with(make_bridge, fake_nova)
    inc = fenced(bridge)
    assert inc["state"] == sm.SERVERS and c.servers["web"]["locked"] and c.servers["early"]["locked"]
    # a lock taken just before a crash: Nova holds it, the row does not know it
    with bridge.store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE server_actions SET locked_by_bridge = false WHERE server_id = 'early'")

    closed = bridge.admin("POST", f"/v1/incidents/{inc['id']}/close", json={"reason": "handled by hand"})
    assert closed.status_code == 200 and closed.json["state"] == sm.CLOSING
    run(bridge)
    inc = bridge.only_incident()
    assert inc["state"] == sm.CLOSED
    assert not c.servers["web"]["locked"] and not c.servers["early"]["locked"]
    assert c.servers["mine"]["locked"] and c.servers["mine"]["locked_reason"] == "user: maintenance"
    assert ("unlock", "mine") not in c.actions
    assert "servers: unlocked 2 the bridge had locked" in [t["cause"] for t in inc["timeline"]]
    assert not [a for a in c.actions if a[0] == "evacuate" and c.actions.count(a) > 1]


def test_a_close_nova_cannot_answer_for_is_held_and_closing_again_retries(make_bridge, fake_nova):
    fake_nova.compute.add("web", HOST, metadata=HA)
    bridge = bridge_with(make_bridge, fake_nova)
    inc = fenced(bridge)
    fake_nova.fail_next("unlock", NovaError("nova unlock server web failed: 503", []))
    bridge.admin("POST", f"/v1/incidents/{inc['id']}/close", json={"reason": "x"})
    run(bridge)
    inc = bridge.only_incident()
    assert inc["state"] == sm.HELD and "could not be unlocked" in inc["last_error"]
    assert fake_nova.compute.servers["web"]["locked"]
    assert bridge.admin("POST", f"/v1/incidents/{inc['id']}/close", json={"reason": "x"}).json["state"] == sm.CLOSING
    run(bridge)
    assert bridge.only_incident()["state"] == sm.CLOSED and not fake_nova.compute.servers["web"]["locked"]


def test_closing_without_servers_the_bridge_may_hold_closes_at_once(make_bridge, fake_nova):
    fake_nova.compute.add("plain", HOST)
    bridge = bridge_with(make_bridge, fake_nova)
    inc = fenced(bridge)
    assert inc["state"] == sm.OUT_OF_SERVICE
    closed = bridge.admin("POST", f"/v1/incidents/{inc['id']}/close", json={"reason": "x"})
    assert closed.json["state"] == sm.CLOSED


def test_the_rule_that_mapped_the_alert_picks_the_servers_group(make_bridge, fake_nova):
    fake_nova.compute.add("web", HOST, metadata=HA)
    groups = [{"rule": "some-other-rule", "policy": "evacuate"}, {"rule": "compute-host-down", "policy": "error"}]
    bridge = bridge_with(make_bridge, fake_nova, policy="none", groups=groups)
    inc = fenced(bridge)
    assert inc["state"] == sm.OUT_OF_SERVICE
    assert rows_of(inc)["web"]["action"] == sv.ERROR and fake_nova.compute.servers["web"]["vm_state"] == "error"


def test_a_failed_evacuation_is_retried_then_reported_with_novas_error_and_unlocked(make_bridge, fake_nova):
    fake_nova.compute.add("web", HOST, metadata=HA)
    bridge = bridge_with(make_bridge, fake_nova, attempts=2)
    fenced(bridge)
    inc = poll(bridge, fake_nova, fail=("web",))  # first evacuation fails: issued again at once
    assert rows_of(inc)["web"]["status"] == sv.REQUESTED and rows_of(inc)["web"]["attempts"] == 2
    assert fake_nova.reads.count(("servers", HOST)) == 2  # a retry never goes on the first listing
    inc = poll(bridge, fake_nova, fail=("web",))
    row = rows_of(inc)["web"]
    assert (row["status"], row["error"], row["attempts"]) == (sv.FAILED, "No valid host was found", 2)
    assert inc["state"] == sm.OUT_OF_SERVICE and "1 server(s) failed: web: No valid host" in inc["last_error"]
    assert not fake_nova.compute.servers["web"]["locked"]


def test_error_policy_resets_every_server_to_error(make_bridge, fake_nova):
    for name in ("a", "b"):
        fake_nova.compute.add(name, HOST, task_state="spawning" if name == "b" else None)
    bridge = bridge_with(make_bridge, fake_nova, policy="error")
    inc = fenced(bridge)
    assert inc["state"] == sm.OUT_OF_SERVICE
    assert sorted(fake_nova.compute.actions) == [("reset_state", "a"), ("reset_state", "b")]
    assert {s["vm_state"] for s in fake_nova.compute.servers.values()} == {"error"}
    assert rows_of(inc)["b"]["task_state"] == "spawning"  # recorded as found


def test_an_evacuation_nova_already_holds_is_never_issued_again(make_bridge, fake_nova):
    """As after a crash between the request and the commit of its row: Nova has the migration."""
    c = fake_nova.compute
    c.add("web", HOST, metadata=HA)
    executor = Executor(dry_run=False, nova=fake_nova, fencing=DRIVERS["manual"]())
    rows = tuple(sv.plan(ServersPolicy(policy=sv.EVACUATE, opt_in=sv.OptIn(metadata=HA)), HostFacts(HOST),
                         fake_nova.servers(10, compute_host=HOST), NOW))
    facts = Facts(now=NOW, incident=Incident(1, HOST, sm.SERVERS, False), policy=Policy(), servers=rows)
    first = executor.run(IssueServerRequests(HOST, ("web",)), facts)
    assert first.servers[0].status == sv.REQUESTED and c.actions == [("lock", "web"), ("evacuate", "web")]
    again = executor.run(IssueServerRequests(HOST, ("web",)), facts)  # the same pending row, replayed
    assert again.servers[0].status == sv.REQUESTED and again.servers[0].detail["found_issued"]
    assert c.actions == [("lock", "web"), ("evacuate", "web")] and len(c.migrations) == 1


def _planned(fake_nova) -> tuple:
    return tuple(sv.plan(ServersPolicy(policy=sv.EVACUATE, opt_in=sv.OptIn(metadata=HA)), HostFacts(HOST),
                         fake_nova.servers(10, compute_host=HOST), NOW))


def _batch(fake_nova, names, rows=None):
    executor = Executor(dry_run=False, nova=fake_nova, fencing=DRIVERS["manual"]())
    rows = rows or _planned(fake_nova)
    facts = Facts(now=NOW, incident=Incident(1, HOST, sm.SERVERS, False), policy=Policy(), servers=rows)
    return executor.run(IssueServerRequests(HOST, tuple(names)), facts), facts


def test_a_batch_locks_every_server_before_it_evacuates_any(fake_nova):
    c = fake_nova.compute
    for name in ("a", "b", "c"):
        c.add(name, HOST, metadata=HA)
    out, _ = _batch(fake_nova, ["a", "b", "c"])
    assert [a for a, _ in c.actions] == ["lock"] * 3 + ["evacuate"] * 3
    assert {a[1] for a in c.actions} == {"a", "b", "c"}
    assert all(r.status == sv.REQUESTED and r.locked_by_bridge for r in out.servers)


def test_a_batch_replayed_after_its_locks_evacuates_once_without_locking_again(fake_nova):
    """As after a crash between a batch's locks and its evacuations: the locks carry the bridge's
    reason, so they are the bridge's (unlocked later), and each server is evacuated once."""
    c = fake_nova.compute
    for name in ("a", "b"):
        c.add(name, HOST, metadata=HA)
    rows = _planned(fake_nova)  # as planned before the crash
    reason = sv.lock_reason(Policy().reason_prefix, 1, HOST)  # the incident's, as _batch makes it
    for name in ("a", "b"):
        c.servers[name].update(locked=True, locked_reason=reason)
    out, _ = _batch(fake_nova, ["a", "b"], rows)
    assert sorted(c.actions) == [("evacuate", "a"), ("evacuate", "b")]
    assert all(r.locked_by_bridge and not r.user_locked for r in out.servers)


def test_a_refused_lock_evacuates_nothing_of_that_server_the_others_go_on(fake_nova):
    c = fake_nova.compute
    for name in ("a", "b"):
        c.add(name, HOST, metadata=HA)
    fake_nova.fail_next("lock", NovaError("409 conflict", []))
    out, _ = _batch(fake_nova, ["a", "b"])
    refused = [r for r in out.servers if r.error]
    assert len(refused) == 1 and "409 conflict" in refused[0].error and refused[0].status == sv.PENDING
    assert [a for a in c.actions if a[0] == "evacuate"] == [("evacuate", next(
        r.server_id for r in out.servers if not r.error))]


def test_nova_refusing_a_request_is_the_rows_error_the_others_go_on(make_bridge, fake_nova):
    c = fake_nova.compute
    c.add("a", HOST, metadata=HA)
    c.add("b", HOST, metadata=HA)
    fake_nova.fail_next("lock", NovaError("409 conflict", []))
    bridge = bridge_with(make_bridge, fake_nova, attempts=1)
    fenced(bridge)
    inc = poll(bridge, fake_nova)
    rows = rows_of(inc)
    assert sorted(r["status"] for r in rows.values()) == [sv.DONE, sv.FAILED]
    failed = next(r for r in rows.values() if r["status"] == sv.FAILED)
    assert "409 conflict" in failed["error"] and failed["attempts"] == 0


# ---- return to service -----------------------------------------------------------------------

def test_return_is_refused_while_evacuations_are_in_flight_then_undoes_force_down_waits_and_enables(
        make_bridge, fake_nova):
    fake_nova.compute.add("web", HOST, metadata=HA)
    bridge = bridge_with(make_bridge, fake_nova, **{"return": {"wait": 60, "poll_interval": 5}})
    inc = fenced(bridge)
    refused = bridge.admin("POST", f"/v1/hosts/{HOST}/return", json={"reason": "fixed"})
    assert refused.status_code == 409 and "1 server(s) from compute-01 still in flight" in refused.json["message"]

    inc = poll(bridge, fake_nova)
    assert inc["state"] == sm.OUT_OF_SERVICE
    fake_nova.compute.unforce_refusals = 1  # Nova: done evacuations remain until the compute restarts
    answer = bridge.admin("POST", f"/v1/hosts/{HOST}/return", json={"reason": "PSU replaced"})
    assert answer.status_code == 202 and answer.json["state"] == sm.RETURNING
    assert "refuses to undo force-down until nova-compute on the host has restarted" in answer.json["note"]
    bridge.settle()
    assert fake_nova.services[HOST]["forced_down"]  # refused once: asked again after poll_interval
    bridge.clock.advance(5)
    bridge.settle()
    assert not fake_nova.services[HOST]["forced_down"] and bridge.only_incident()["state"] == sm.RETURNING
    fake_nova.services[HOST]["state"] = "up"  # the compute reports again
    bridge.clock.advance(5)
    bridge.settle()
    inc = bridge.only_incident()
    assert inc["state"] == sm.CLOSED and fake_nova.services[HOST]["status"] == "enabled"
    assert fake_nova.calls[-2:] == [("unforce_down", HOST), ("enable", HOST)]
    moves = [t["to_state"] for t in inc["timeline"] if t["from_state"] != t["to_state"]]
    assert moves[-4:] == [sm.SERVERS, sm.OUT_OF_SERVICE, sm.RETURNING, sm.CLOSED]


def test_a_return_nova_never_accepts_is_held_with_the_reason_and_a_retry_waits_again(make_bridge, fake_nova):
    bridge = bridge_with(make_bridge, fake_nova, **{"return": {"wait": 10, "poll_interval": 5}})
    inc = fenced(bridge)
    assert inc["state"] == sm.OUT_OF_SERVICE  # no servers
    fake_nova.compute.unforce_refusals = 10
    assert bridge.admin("POST", f"/v1/hosts/{HOST}/return", json={"reason": "r"}).status_code == 202
    for _ in range(3):
        bridge.settle()
        bridge.clock.advance(5)
    bridge.settle()
    inc = bridge.only_incident()
    assert inc["state"] == sm.HELD and "restarted" in inc["last_error"] and inc["resume_state"] == sm.RETURNING
    fake_nova.compute.unforce_refusals = 0
    fake_nova.services[HOST]["state"] = "up"
    assert bridge.admin("POST", f"/v1/incidents/{inc['id']}/retry", json={"reason": "compute restarted"}).status_code == 200
    run(bridge)
    assert bridge.only_incident()["state"] == sm.CLOSED


def test_a_resolving_alert_never_returns_the_host(make_bridge, fake_nova):
    bridge = bridge_with(make_bridge, fake_nova)
    fenced(bridge)
    bridge.post_alert(alert(HOST, status="resolved"))
    bridge.settle()
    assert bridge.only_incident()["state"] == sm.OUT_OF_SERVICE and fake_nova.services[HOST]["forced_down"]


def test_return_of_a_host_without_an_open_incident_is_404(make_bridge, fake_nova):
    bridge = bridge_with(make_bridge, fake_nova)
    answer = bridge.admin("POST", f"/v1/hosts/{HOST}/return", json={"reason": "r"})
    assert answer.status_code == 404 and "no open incident for compute-01" in answer.json["message"]
    assert bridge.admin("POST", f"/v1/hosts/{HOST}/return", json={}).status_code == 400


@pytest.mark.parametrize("state", [sm.FENCING, sm.SERVERS])
def test_return_is_refused_before_the_host_is_out_of_service(state):
    inc = Incident(1, HOST, state, False)
    decision = sm.decide(Facts(now=NOW, incident=inc, action=sm.OperatorAction(sm.RETURN, "ops", "r")))
    assert decision.refused and decision.to_state is None


def test_threads_share_one_keystone_session_so_one_token(tmp_path, monkeypatch):
    import threading

    import yaml

    from bridge.nova import Nova

    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(yaml.safe_dump({"clouds": {"c": {"auth_type": "admin_token", "region_name": "R",
                                                       "auth": {"token": "t", "endpoint": "http://127.0.0.1:9/v2.1"}}}}))
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
    nova = Nova("c", timeout=1, attempts=1, backoff_max=1)
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(nova.conn)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(c) for c in seen}) == 3  # a connection (its proxies) per thread
    assert len({id(c.session) for c in seen}) == 1  # one keystoneauth session: its token, fetched once


def test_the_listing_pages_by_marker_and_stops_at_a_short_page():
    from types import SimpleNamespace

    from bridge.nova import Nova

    def server(i):
        return SimpleNamespace(id=f"s{i}", name=f"s{i}", flavor={}, image=None, fault=None, vm_state="active",
                               task_state=None, compute_host=HOST, is_locked=False, locked_reason=None,
                               host_status="DOWN", metadata={})
    everything = [server(i) for i in range(5)]
    asked = []

    def servers(limit, marker=None, **query):
        asked.append(marker)
        start = 0 if marker is None else int(marker[1:]) + 1
        return iter(everything[start:start + limit])
    conn = SimpleNamespace(compute=SimpleNamespace(servers=servers))
    nova = Nova("c", timeout=1, attempts=1, backoff_max=1, connect=lambda **_: conn)
    assert [s.id for s in nova.servers(2, compute_host=HOST)] == [s.id for s in everything]
    assert asked == [None, "s1", "s3"]  # pages of 2, 2, 1: the short one is the last
    asked.clear()
    assert len(nova.servers(5, compute_host=HOST)) == 5 and asked == [None, "s4"]  # a full page: one more


def test_batches_go_on_the_listing_they_follow_while_it_is_fresh(make_bridge, fake_nova):
    for i in range(6):
        fake_nova.compute.add(f"s{i}", HOST, metadata=HA)
    bridge = bridge_with(make_bridge, fake_nova, concurrency=1, policy="error")  # batches of 4
    inc = fenced(bridge)
    assert inc["state"] == sm.OUT_OF_SERVICE and all(r["status"] == sv.DONE for r in inc["servers"])
    assert fake_nova.reads.count(("servers", HOST)) == 1  # the plan's listing, for both batches


def test_batches_after_a_stale_listing_read_nova_again(make_bridge, fake_nova, monkeypatch):
    from bridge import servers_run

    for i in range(6):
        fake_nova.compute.add(f"s{i}", HOST, metadata=HA)
    monkeypatch.setattr(servers_run, "FRESH_LISTING", -1.0)  # stale at once
    inc = fenced(bridge_with(make_bridge, fake_nova, concurrency=1, policy="error"))
    assert all(r["status"] == sv.DONE for r in inc["servers"])
    assert fake_nova.reads.count(("servers", HOST)) == 3  # the plan's listing, then each batch's own


def test_a_stale_listing_is_read_again_before_the_first_batch(make_bridge, fake_nova, monkeypatch):
    from bridge import servers_run

    fake_nova.compute.add("s0", HOST, metadata=HA)
    monkeypatch.setattr(servers_run, "FRESH_LISTING", -1.0)
    fenced(bridge_with(make_bridge, fake_nova, policy="error"))
    assert fake_nova.reads.count(("servers", HOST)) == 2


def test_a_read_back_reads_no_server_whose_evacuation_is_underway_until_it_is_late(make_bridge, fake_nova):
    fake_nova.compute.add("web", HOST, metadata=HA)
    bridge = bridge_with(make_bridge, fake_nova, settle_timeout=60)
    fenced(bridge)
    fake_nova.reads.clear()
    bridge.clock.advance(2)
    run(bridge)  # the migration is still accepted: read-backs list migrations only
    assert fake_nova.reads == [] and rows_of(bridge.only_incident())["web"]["status"] == sv.REQUESTED
    bridge.clock.advance(61)
    run(bridge)
    row = rows_of(bridge.only_incident())["web"]
    assert ("server", "web") in fake_nova.reads
    assert row["status"] == sv.FAILED and "not settled within 60s" in row["error"]
    assert not fake_nova.compute.servers["web"]["locked"]


def test_evacuations_are_read_as_json_pages_by_uuid_marker_per_server_oldest_first():
    from types import SimpleNamespace

    from bridge.nova import Nova

    migrations = [{"id": i, "uuid": f"m{i}", "instance_uuid": "web" if i % 2 else "db", "status": "done",
                   "dest_compute": "compute-02", "created_at": f"2026-11-24T12:00:0{i}"} for i in range(5)]
    asked = []

    def get(path, params, microversion):
        asked.append((path, params.get("marker"), params["source_compute"], params["migration_type"]))
        start = 0 if "marker" not in params else int(params["marker"][1:]) + 1
        page = migrations[start:start + params["limit"]]
        return SimpleNamespace(status_code=200, json=lambda: {"migrations": page})
    conn = SimpleNamespace(compute=SimpleNamespace(get=get))
    nova = Nova("c", timeout=1, attempts=1, backoff_max=1, connect=lambda **_: conn)
    found = nova.evacuations(HOST, "2026-11-24T11:00:00", page_size=2)
    assert [p[1] for p in asked] == [None, "m1", "m3"]
    assert all(p[0] == "/os-migrations" and p[2:] == (HOST, "evacuation") for p in asked)
    assert [m["id"] for m in found["db"]] == ["0", "2", "4"] and [m["id"] for m in found["web"]] == ["1", "3"]
    assert found["web"][0] == {"id": "1", "status": "done", "dest": "compute-02", "created_at": "2026-11-24T12:00:01"}
