"""The pipeline in one process, against a fake Nova: intake, incidents, fencing, Nova steps."""

import copy

from bridge import incidents as sm
from bridge.inventory import Inventory
from bridge.nova import NovaError
from tests.conftest import joined, sample_json


def alert(host="compute-01", status="firing", fingerprint=None, starts="2026-11-24T19:17:07.392108Z"):
    body = copy.deepcopy(sample_json("webhook_firing_api_v2.json"))
    body["status"] = status
    a = body["alerts"][0]
    a["status"] = status
    a["labels"]["openstack_host"] = host
    a["fingerprint"] = fingerprint or f"fp-{host}"
    a["startsAt"] = starts
    if status == "resolved":
        a["endsAt"] = "2026-11-24T19:27:07Z"
    return body


def causes(incident) -> list[str]:
    return [t["cause"] for t in incident["timeline"]]


def states(incident) -> list[str]:
    return [t["to_state"] for t in incident["timeline"] if t["from_state"] != t["to_state"]]


def test_alert_then_confirmation_forces_down_then_disables(live_bridge, fake_nova):
    assert live_bridge.post_alert(alert()).status_code == 202
    live_bridge.settle()
    inc = live_bridge.only_incident()
    assert inc["state"] == sm.FENCING and fake_nova.calls == []
    response = live_bridge.confirm("compute-01", operator="alice")
    assert response.status_code == 201 and response.json["incident_id"] == inc["id"]
    live_bridge.settle()
    inc = live_bridge.incident(inc["id"])
    assert inc["state"] == sm.OUT_OF_SERVICE
    assert fake_nova.calls == [("force_down", "compute-01"), ("disable", "compute-01")]
    svc = fake_nova.services["compute-01"]
    assert svc["forced_down"] and svc["status"] == "disabled"
    assert svc["disabled_reason"] == f"nova-hostdown-bridge: incident {inc['id']}, host down and fenced (manual by ops (alice))"
    assert states(inc) == [sm.SUSPECTED, sm.FENCING, sm.FENCED, sm.FORCED_DOWN, sm.NOVA_DOWN, sm.OUT_OF_SERVICE]
    [evidence] = inc["evidence"]
    assert (evidence["actor"], evidence["reason"]) == ("ops (alice)", "PDU port off")


def test_without_confirmation_the_incident_is_held_after_the_timeout_and_nova_untouched(live_bridge, fake_nova):
    live_bridge.post_alert(alert())
    live_bridge.settle()
    live_bridge.clock.advance(299)
    live_bridge.settle()
    assert live_bridge.only_incident()["state"] == sm.FENCING
    live_bridge.clock.advance(2)
    live_bridge.settle()
    inc = live_bridge.only_incident()
    assert inc["state"] == sm.HELD and "no fencing proof within 300s" in inc["last_error"]
    assert fake_nova.calls == []
    # a late confirmation is recorded, but a held incident waits for a person
    live_bridge.confirm("compute-01")
    live_bridge.settle()
    assert live_bridge.only_incident()["state"] == sm.HELD and fake_nova.calls == []
    # retry: a fresh wait for proof, which is now there
    response = live_bridge.admin("POST", f"/v1/incidents/{inc['id']}/retry", json={"reason": "confirmed late"})
    assert response.status_code == 200
    live_bridge.settle()
    assert live_bridge.only_incident()["state"] == sm.OUT_OF_SERVICE
    assert fake_nova.calls == [("force_down", "compute-01"), ("disable", "compute-01")]


def test_on_timeout_failed(make_bridge, fake_nova):
    bridge = make_bridge(fake_nova, dry_run=False, nova={"cloud": "fake"},
                         fencing={"timeout": 5, "on_timeout": "failed"})
    bridge.post_alert(alert())
    bridge.settle()
    bridge.clock.advance(6)
    bridge.settle()
    assert bridge.only_incident()["state"] == sm.FAILED and fake_nova.calls == []


def test_repeated_alerts_for_a_host_join_its_open_incident(live_bridge):
    live_bridge.post_alert(alert(fingerprint="a"))
    live_bridge.post_alert(alert(fingerprint="a"))  # replay
    live_bridge.post_alert(alert(fingerprint="b"))  # another alert, same host
    live_bridge.post_alert(alert(host="compute-01.example.org", fingerprint="c"))  # FQDN spelling
    live_bridge.settle()
    inc = live_bridge.only_incident()
    assert [s["fingerprint"] for s in live_bridge.signals_of(inc["id"])] == ["a", "b", "c"]
    # b and c arrive together: one timeline entry, counted (tests/test_arrivals.py)
    assert joined(inc) == 2
    assert causes(inc)[1] == "2 alerts joined (alertmanager 2); latest: alertmanager c (compute-host-down)"


def test_resolve_before_fencing_cancels_only_when_every_alert_resolved(live_bridge, fake_nova):
    live_bridge.post_alert(alert(fingerprint="a"))
    live_bridge.post_alert(alert(fingerprint="b"))
    live_bridge.settle()
    live_bridge.post_alert(alert(fingerprint="a", status="resolved"))
    live_bridge.settle()
    assert live_bridge.only_incident()["state"] == sm.FENCING
    live_bridge.post_alert(alert(fingerprint="b", status="resolved"))
    live_bridge.settle()
    inc = live_bridge.only_incident()
    assert inc["state"] == sm.CANCELLED and inc["closed_at"] is not None
    assert "every alert resolved before the host was fenced" in causes(inc)
    assert fake_nova.calls == []
    # the host can have a new incident later
    live_bridge.post_alert(alert(fingerprint="a", starts="2026-11-24T20:00:00Z"))
    live_bridge.settle()
    assert [i["state"] for i in live_bridge.store.list_incidents()] == [sm.FENCING, sm.CANCELLED]


def test_resolve_after_fencing_is_recorded_and_changes_nothing(live_bridge, fake_nova):
    live_bridge.post_alert(alert())
    live_bridge.confirm("compute-01")
    live_bridge.settle()
    live_bridge.post_alert(alert(status="resolved"))
    live_bridge.settle()
    inc = live_bridge.only_incident()
    assert inc["state"] == sm.OUT_OF_SERVICE and "alert resolved: alertmanager fp-compute-01" in causes(inc)
    assert fake_nova.services["compute-01"]["forced_down"]  # never returned to service on "resolved"


def test_a_confirmation_before_the_alert_counts_within_the_window(live_bridge, fake_nova):
    assert live_bridge.confirm("compute-01").json["incident_id"] is None
    live_bridge.clock.advance(500)
    live_bridge.post_alert(alert())
    live_bridge.settle()
    assert live_bridge.only_incident()["state"] == sm.OUT_OF_SERVICE
    assert fake_nova.calls == [("force_down", "compute-01"), ("disable", "compute-01")]


def test_a_confirmation_older_than_the_window_does_not_count(live_bridge, fake_nova):
    live_bridge.confirm("compute-01")
    live_bridge.clock.advance(601)
    live_bridge.post_alert(alert())
    live_bridge.settle()
    inc = live_bridge.only_incident()
    assert inc["state"] == sm.FENCING and inc["evidence"] == [] and fake_nova.calls == []


def test_a_confirmation_for_another_host_is_not_proof(live_bridge, fake_nova):
    live_bridge.post_alert(alert())
    live_bridge.settle()
    live_bridge.confirm("compute-03")
    live_bridge.settle()
    assert live_bridge.only_incident()["state"] == sm.FENCING and fake_nova.calls == []


def test_confirmation_for_an_unknown_host_is_404_once_nova_is_known(live_bridge):
    live_bridge.post_alert(alert())
    live_bridge.settle()  # loads the inventory
    response = live_bridge.confirm("compute-99")
    assert response.status_code == 404 and "no nova-compute service on host 'compute-99'" in response.json["message"]
    assert live_bridge.confirm("compute-02").json["host"] == "compute-02.example.org"


def test_confirmation_needs_the_admin_token_and_a_reason(live_bridge):
    no_token = live_bridge.client.post("/v1/hosts/compute-01/fence-confirmation", json={"reason": "x"})
    assert no_token.status_code == 401
    webhook_token = live_bridge.client.post("/v1/hosts/compute-01/fence-confirmation", json={"reason": "x"},
                                            headers={"Authorization": "Bearer test-webhook-token"})
    assert webhook_token.status_code == 401
    assert live_bridge.confirm("compute-01", reason=" ").status_code == 400
    assert live_bridge.admin("POST", "/v1/hosts/compute-01/fence-confirmation", data="x").status_code == 400


def test_an_alert_for_an_unknown_host_is_stored_visible_and_acts_on_nothing(live_bridge, fake_nova):
    live_bridge.post_alert(alert(host="compute-99"))
    live_bridge.settle()
    assert live_bridge.store.list_incidents() == []
    [row] = live_bridge.admin("GET", "/v1/signals?unmapped=1").json["signals"]
    assert row["host"] is None and "no nova-compute service on host 'compute-99'" in row["note"]
    assert fake_nova.calls == []


def test_a_host_added_to_nova_after_the_last_inventory_is_found(live_bridge, fake_nova):
    live_bridge.post_alert(alert())
    live_bridge.settle()
    fake_nova.services["compute-new"] = dict(fake_nova.services["compute-01"], host="compute-new")
    live_bridge.clock.advance(10)
    live_bridge.post_alert(alert(host="compute-new"))
    live_bridge.settle()
    assert {i["host"] for i in live_bridge.store.list_incidents()} == {"compute-01", "compute-new"}


def test_intake_reads_the_stored_hosts_once_while_fresh_and_asks_nova_outside_its_turn(live_bridge, fake_nova):
    store, turn = live_bridge.store, live_bridge.store.intake_turn
    reads, asked = [], []
    stored, listed = store.inventory, fake_nova.compute_services
    store.inventory = lambda: reads.append(1) or stored()

    class Watched:  # the turn, telling whether it is held
        held = False

        def __enter__(self):
            Watched.held = True
            return turn.__enter__()

        def __exit__(self, *exc):
            Watched.held = False
            return turn.__exit__(*exc)

    store.intake_turn = Watched()
    fake_nova.compute_services = lambda: asked.append(Watched.held) or listed()
    for n in range(30):
        live_bridge.post_alert(alert(host=("compute-01", "compute-03")[n % 2], fingerprint=f"fp-{n}"))
    live_bridge.settle()
    assert {i["host"] for i in store.list_incidents()} == {"compute-01", "compute-03"}
    assert reads == [1] and asked == [False]  # 30 signals resolved against one read; Nova asked before the turn
    live_bridge.clock.advance(61)  # the inventory is old: asked again, still before the turn
    live_bridge.post_alert(alert(host="compute-03", fingerprint="fp-late"))
    live_bridge.settle()
    assert asked == [False, False]


def test_a_refresh_another_process_made_is_used_before_nova_is_asked_again(live_bridge, fake_nova):
    asked, listed = [], fake_nova.compute_services
    fake_nova.compute_services = lambda: asked.append(1) or listed()
    here, other = (Inventory(live_bridge.store, fake_nova, ttl=60, clock=live_bridge.clock) for _ in range(2))
    assert here.resolve("compute-01")[0] == "compute-01" and len(asked) == 1
    fake_nova.services["compute-new"] = dict(fake_nova.services["compute-01"], host="compute-new")
    live_bridge.clock.advance(10)
    assert other.resolve("compute-new")[0] == "compute-new" and len(asked) == 2  # the other process found it
    assert here.resolve("compute-new")[0] == "compute-new" and len(asked) == 2  # read from the store, not Nova
    assert here.resolve("compute-gone")[0] is None and len(asked) == 3  # unknown to both: Nova is asked


def test_signals_wait_while_nova_cannot_be_asked_for_its_hosts(live_bridge, fake_nova):
    fake_nova.fail_next("compute_services", NovaError("nova list services failed: 500", []))
    live_bridge.post_alert(alert())
    live_bridge.settle()
    assert live_bridge.store.list_incidents() == []
    assert live_bridge.store.unprocessed_signals()  # kept, not dropped
    live_bridge.clock.advance(6)
    live_bridge.settle()
    assert live_bridge.only_incident()["state"] == sm.FENCING


def test_nova_error_holds_the_incident_with_the_error_then_retry_completes(live_bridge, fake_nova):
    live_bridge.post_alert(alert())
    live_bridge.confirm("compute-01")
    live_bridge.settle()  # inventory loaded, fenced, forced down, disabled... unless:
    live_bridge2 = live_bridge  # same bridge, a second host this time
    live_bridge2.post_alert(alert(host="compute-03"))
    live_bridge2.settle()
    fake_nova.fail_next("force_down", NovaError("nova force down compute-03 failed: HttpException: 500",
                                                [{"attempt": 4}]))
    live_bridge2.confirm("compute-03")
    live_bridge2.settle()
    [inc] = live_bridge.store.list_incidents(host="compute-03")
    assert inc["state"] == sm.HELD and "500" in inc["last_error"] and inc["resume_state"] == sm.FENCED
    assert ("force_down", "compute-03") not in fake_nova.calls
    live_bridge.admin("POST", f"/v1/incidents/{inc['id']}/retry", json={"reason": "nova is back"})
    live_bridge.settle()
    assert live_bridge.store.get_incident(inc["id"])["state"] == sm.OUT_OF_SERVICE
    assert fake_nova.calls[-2:] == [("force_down", "compute-03"), ("disable", "compute-03")]


def test_dry_run_records_what_would_be_called_and_calls_nothing(make_bridge, fake_nova):
    bridge = make_bridge(fake_nova, dry_run=True, nova={"cloud": "fake"})
    bridge.post_alert(alert())
    bridge.confirm("compute-01")
    bridge.settle()
    inc = bridge.only_incident()
    assert inc["state"] == sm.OUT_OF_SERVICE and inc["dry_run"] is True
    assert fake_nova.calls == [] and not fake_nova.services["compute-01"]["forced_down"]
    planned = [t["detail"] for t in inc["timeline"] if t["cause"].startswith("dry-run: would call")]
    assert [p["call"] for p in planned] == ["force_down", "disable"]
    assert "nova-compute service forced down (dry-run: Nova not called)" in causes(inc)


def test_dry_run_without_a_cloud(bridge):
    bridge.post_alert(alert(host="anything-at-all"))
    bridge.confirm("anything-at-all")
    bridge.settle()
    inc = bridge.only_incident()
    assert inc["state"] == sm.OUT_OF_SERVICE and inc["host"] == "anything-at-all"


def test_long_fingerprints_and_host_names_are_stored_not_refused(bridge):
    # SQLite ignores declared lengths; PostgreSQL refused them, and a sender retries a 503 for ever
    long_host = "h" * 255  # the longest host name Nova has (services.host, String(255))
    assert bridge.post_alert(alert(host=long_host, fingerprint="f" * 300)).status_code == 202
    assert bridge.confirm(long_host).status_code == 201
    bridge.settle()
    inc = bridge.only_incident()
    assert inc["host"] == long_host and inc["state"] == sm.OUT_OF_SERVICE


def test_steps_already_done_in_nova_are_skipped_not_repeated(live_bridge, fake_nova):
    fake_nova.services["compute-01"].update(forced_down=True, state="down")
    live_bridge.post_alert(alert())
    live_bridge.confirm("compute-01")
    live_bridge.settle()
    inc = live_bridge.only_incident()
    assert fake_nova.calls == [("disable", "compute-01")]
    assert "nova force_down: skipped, already forced down" in causes(inc)


def test_close_ends_an_incident_without_touching_nova(live_bridge, fake_nova):
    live_bridge.post_alert(alert())
    live_bridge.settle()
    inc = live_bridge.only_incident()
    assert live_bridge.admin("POST", f"/v1/incidents/{inc['id']}/close", json={}).status_code == 400
    response = live_bridge.admin("POST", f"/v1/incidents/{inc['id']}/close", json={"reason": "false alarm"})
    assert response.status_code == 200 and response.json["state"] == sm.CLOSED
    assert live_bridge.admin("POST", f"/v1/incidents/{inc['id']}/retry", json={"reason": "x"}).status_code == 409
    assert live_bridge.admin("POST", "/v1/incidents/999/close", json={"reason": "x"}).status_code == 404
    live_bridge.confirm("compute-01")
    live_bridge.settle()
    assert fake_nova.calls == []


def test_read_side_needs_the_admin_token(live_bridge):
    live_bridge.post_alert(alert())
    live_bridge.settle()
    assert live_bridge.client.get("/v1/incidents").status_code == 401
    listed = live_bridge.admin("GET", "/v1/incidents?open=1&host=compute-01").json["incidents"]
    assert [i["host"] for i in listed] == ["compute-01"]
    assert live_bridge.admin("GET", "/v1/incidents/12345").status_code == 404
    assert live_bridge.admin("GET", "/v1/incidents?limit=0").status_code == 400
