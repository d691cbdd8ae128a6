"""Alerts arriving for an open incident share timeline entries, per burst (bridge/store/arrivals.py)."""

import copy

from bridge import incidents as sm
from bridge.store.arrivals import BURST
from tests.conftest import joined
from tests.test_engine import alert


def storm(n: int, host: str = "compute-01", status: str = "firing") -> dict:
    """One Alertmanager body with n distinct alerts for one host."""
    body = alert(host=host, status=status)
    one = body["alerts"][0]
    body["alerts"] = [{**copy.deepcopy(one), "fingerprint": f"fp{i:05d}"} for i in range(n)]
    return body


def test_one_body_of_a_thousand_alerts_for_a_host_adds_one_timeline_entry(live_bridge):
    # before: one timeline row per alert, and the incident read as a megabyte
    assert live_bridge.post_alert(storm(1000)).status_code == 202
    live_bridge.settle()
    inc = live_bridge.only_incident()
    arrivals = [t for t in inc["timeline"] if t["detail"].get("burst")]
    # the engine takes signals in by the hundred and steps in between: fencing requested
    # after the first hundred ends that burst
    assert joined(inc) == 999 and len(arrivals) <= 2
    assert arrivals[-1]["cause"].endswith(" alerts joined (alertmanager "
                                          f"{arrivals[-1]['detail']['count']}); latest: alertmanager fp00999 (compute-host-down)")
    assert arrivals[-1]["detail"]["signal_id"] < arrivals[-1]["detail"]["last_signal_id"]
    assert inc["counts"]["timeline"] == len(inc["timeline"]) < 10
    # every signal is still the incident's, and paged
    assert inc["counts"]["signals"] == 1000 and inc["counts"]["signals_by_source"] == {"alertmanager": {"firing": 1000}}
    assert len({s["id"] for s in live_bridge.signals_of(inc["id"])}) == 1000
    response = live_bridge.admin("GET", f"/v1/incidents/{inc['id']}")
    assert response.status_code == 200 and len(response.data) < 20_000


def test_a_burst_ends_with_its_window_or_with_anything_else_on_the_timeline(bridge):
    bridge.post_alert(alert(fingerprint="first"))
    bridge.engine.intake_pending()  # opened; no step yet
    for name in ("a", "b"):
        bridge.post_alert(alert(fingerprint=name))
    bridge.engine.intake_pending()
    bridge.clock.advance(BURST.total_seconds())
    bridge.post_alert(alert(fingerprint="c"))  # the window has passed: a new entry
    bridge.engine.intake_pending()
    bridge.settle()  # suspected -> fencing: ends that burst too
    bridge.post_alert(alert(fingerprint="d"))
    bridge.settle()
    inc = bridge.only_incident()
    entries = [(t["to_state"], t["detail"]["count"]) for t in inc["timeline"] if t["detail"].get("burst")]
    assert entries == [(sm.SUSPECTED, 2), (sm.SUSPECTED, 1), (sm.FENCING, 1)]
    assert joined(inc) == 4
    assert inc["timeline"][-1]["cause"] == "alert joined: alertmanager d (compute-host-down)"


def test_resolves_in_a_burst_share_an_entry(bridge):
    bridge.post_alert(storm(5))
    bridge.settle()
    bridge.post_alert(storm(5, status="resolved"))
    bridge.settle()
    inc = bridge.only_incident()
    assert inc["state"] == sm.CANCELLED and joined(inc, "resolved") == 5
    [resolved] = [t for t in inc["timeline"] if t["detail"].get("burst") == "resolved"]
    assert resolved["cause"].startswith("5 alerts resolved (alertmanager 5)")
    assert resolved["detail"]["sources"] == {"alertmanager": 5}
