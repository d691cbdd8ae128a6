"""Fencing proof belongs to exactly one incident (the two defects found by outside testers)."""

import pytest

from bridge import incidents as sm
from tests.test_engine import alert

NOVA_PAIR = [("force_down", "compute-01"), ("disable", "compute-01")]


def test_a_repeated_confirmation_is_more_evidence_for_the_open_incident_never_proof_for_a_later_one(
        live_bridge, fake_nova):
    live_bridge.post_alert(alert())
    live_bridge.confirm("compute-01", reason="first")
    live_bridge.settle()
    first = live_bridge.only_incident()
    assert first["state"] == sm.OUT_OF_SERVICE and fake_nova.calls == NOVA_PAIR
    again = live_bridge.confirm("compute-01", reason="second")
    assert again.json["incident_id"] == first["id"] and again.json["expires_at"] is None
    assert [e["reason"] for e in live_bridge.incident(first["id"])["evidence"]] == ["first", "second"]
    live_bridge.admin("POST", f"/v1/incidents/{first['id']}/close", json={"reason": "host repaired"})
    # the same host fails again, within the confirmation window: a webhook token alone must not act
    live_bridge.clock.advance(60)
    fake_nova.services["compute-01"].update(forced_down=False, state="up", status="enabled")
    live_bridge.post_alert(alert(starts="2026-11-24T20:00:00Z"))
    live_bridge.settle()
    [second] = [i for i in live_bridge.store.list_incidents() if i["id"] != first["id"]]
    second = live_bridge.incident(second["id"])
    assert second["state"] == sm.FENCING and second["evidence"] == [] and second["proof_id"] is None
    assert fake_nova.calls == NOVA_PAIR  # nothing more reached Nova
    live_bridge.clock.advance(301)
    live_bridge.settle()
    assert live_bridge.incident(second["id"])["state"] == sm.HELD and fake_nova.calls == NOVA_PAIR


def test_an_early_confirmation_never_counts_after_an_incident_of_the_host_ended(live_bridge, fake_nova):
    live_bridge.post_alert(alert())
    live_bridge.settle()
    live_bridge.clock.advance(1)
    live_bridge.confirm("compute-03")  # no incident for compute-03 yet: waits for its next one
    live_bridge.clock.advance(1)
    # an incident of compute-03 that ended after the confirmation (opened by an older bridge, say)
    with live_bridge.store.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO incidents (host, state, dry_run, opened_at, updated_at, closed_at, epoch, nudges) "
            "VALUES ('compute-03', 'closed', false, ?, ?, ?, 0, 0)" if conn.dialect.name == "sqlite" else
            "INSERT INTO incidents (host, state, dry_run, opened_at, updated_at, closed_at, epoch, nudges) "
            "VALUES ('compute-03', 'closed', false, %s, %s, %s, 0, 0)",
            (live_bridge.clock().replace(tzinfo=None),) * 3)
    live_bridge.clock.advance(1)
    live_bridge.post_alert(alert(host="compute-03"))
    live_bridge.settle()
    [inc] = live_bridge.store.list_incidents(host="compute-03", open_only=True)
    assert inc["state"] == sm.FENCING and live_bridge.incident(inc["id"])["evidence"] == []
    assert ("force_down", "compute-03") not in fake_nova.calls


def test_an_early_confirmation_counts_for_the_next_incident_only(live_bridge, fake_nova):
    live_bridge.confirm("compute-01", reason="monitor fenced it")
    live_bridge.post_alert(alert())
    live_bridge.settle()
    first = live_bridge.only_incident()
    assert first["state"] == sm.OUT_OF_SERVICE and first["evidence"][0]["incident_id"] == first["id"]
    live_bridge.admin("POST", f"/v1/incidents/{first['id']}/close", json={"reason": "repaired"})
    fake_nova.services["compute-01"].update(forced_down=False, state="up", status="enabled")
    live_bridge.post_alert(alert(starts="2026-11-24T20:00:00Z"))
    live_bridge.settle()
    assert [i["state"] for i in live_bridge.store.list_incidents()] == [sm.FENCING, sm.CLOSED]


@pytest.mark.parametrize("given, nova_host", [
    ("compute-01.example.org", "compute-01"),   # FQDN for a short Nova name
    ("compute-02", "compute-02.example.org"),   # short name for an FQDN
    ("COMPUTE-03", "compute-03"),               # another case
])
def test_an_early_confirmation_on_a_fresh_bridge_resolves_like_an_alert(live_bridge, fake_nova, given, nova_host):
    assert live_bridge.store.inventory() == ([], None)  # fresh: no alert has loaded Nova's hosts
    response = live_bridge.confirm(given)
    assert response.status_code == 201 and response.json["host"] == nova_host
    live_bridge.post_alert(alert(host=nova_host))
    live_bridge.settle()
    inc = live_bridge.only_incident()
    assert inc["host"] == nova_host and inc["state"] == sm.OUT_OF_SERVICE
    assert ("force_down", nova_host) in fake_nova.calls


def test_a_confirmation_for_a_host_nova_does_not_know_is_404_on_a_fresh_bridge(live_bridge):
    response = live_bridge.confirm("compute-99.example.org")
    assert response.status_code == 404 and "no nova-compute service" in response.json["message"]
    assert live_bridge.store.open_incident_for("compute-99.example.org") is None


def test_a_confirmation_is_503_while_nova_cannot_say_which_hosts_exist(live_bridge, fake_nova):
    from bridge.nova import NovaError
    fake_nova.fail_next("compute_services", NovaError("nova list services failed: 500", []))
    response = live_bridge.confirm("compute-01")
    assert response.status_code == 503 and "retry" in response.json["message"]


def test_without_a_cloud_names_are_taken_as_given(bridge):
    assert bridge.confirm("rack7-node3").json["host"] == "rack7-node3"


def test_an_alert_for_an_out_of_service_host_is_attached_and_never_fences_again(live_bridge, fake_nova):
    live_bridge.post_alert(alert())
    live_bridge.confirm("compute-01")
    live_bridge.settle()
    inc = live_bridge.only_incident()
    live_bridge.post_alert(alert(fingerprint="another"))
    live_bridge.settle()
    inc = live_bridge.only_incident()
    assert inc["state"] == sm.OUT_OF_SERVICE and inc["counts"]["signals"] == 2
    assert any(t["cause"].startswith("alert attached: alertmanager another") for t in inc["timeline"])
    assert sum(t["to_state"] == sm.FENCING for t in inc["timeline"]) == 1 and fake_nova.calls == NOVA_PAIR
