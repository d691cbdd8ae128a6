"""The read side is bounded: an incident carries its latest entries, and every list pages by cursor."""

from types import SimpleNamespace

import pytest
import requests
from click.testing import CliRunner

from bridge.cli import main
from bridge.store.reads import RECENT
from tests.harness.bridge_process import ADMIN_TOKEN
from tests.test_engine import alert


def pages(bridge, path: str, key: str) -> list[list[dict]]:
    """Every page of `path`, following its `next` links."""
    out = []
    while path:
        response = bridge.admin("GET", path)
        assert response.status_code == 200, response.json
        out.append(response.json[key])
        path = response.json["next"]
    return out


def test_an_incident_carries_its_latest_entries_and_pages_the_rest(bridge):
    bridge.post_alert(alert())
    bridge.settle()
    [inc] = bridge.store.list_incidents()
    for n in range(RECENT + 10):  # each a timeline entry and evidence
        bridge.store.add_confirmation("compute-01", "ops", f"look {n}", bridge.clock(), 600, {})
    detail = bridge.admin("GET", f"/v1/incidents/{inc['id']}").json
    counts = detail["counts"]
    assert len(detail["timeline"]) == len(detail["evidence"]) == RECENT
    assert counts["evidence"] == RECENT + 10 and counts["timeline"] > RECENT + 10
    assert [e["reason"] for e in detail["evidence"]][-1] == f"look {RECENT + 9}"  # the latest, oldest first
    assert counts["signals"] == 1 and counts["signals_by_source"] == {"alertmanager": {"firing": 1}}
    timeline = pages(bridge, detail["links"]["timeline"] + "?limit=25", "timeline")
    assert [len(p) for p in timeline][:-1] == [25] * (len(timeline) - 1)
    everything = [entry for page in timeline for entry in page]
    assert len(everything) == counts["timeline"] and everything[-RECENT:] == detail["timeline"]
    assert [e["id"] for e in everything] == sorted({e["id"] for e in everything})
    evidence = [e for page in pages(bridge, detail["links"]["evidence"] + "?limit=7", "evidence") for e in page]
    assert [e["reason"] for e in evidence] == [f"look {n}" for n in range(RECENT + 10)]
    [signal] = bridge.admin("GET", detail["links"]["signals"]).json["signals"]
    assert signal["incident_id"] == inc["id"]


def test_incidents_and_signals_page_newest_first_keeping_their_filters(bridge):
    for n in range(7):
        bridge.post_alert(alert(host=f"compute-{n:02d}"))
    for name in ("nowhere-1", "nowhere-2"):
        bridge.post_alert(alert(host="", fingerprint=name))  # maps to no host
    bridge.settle()
    incidents = pages(bridge, "/v1/incidents?open=1&limit=3", "incidents")
    assert [len(p) for p in incidents] == [3, 3, 1]
    ids = [i["id"] for p in incidents for i in p]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 7
    assert bridge.admin("GET", "/v1/incidents?open=1&limit=3").json["next"].count("open=1") == 1
    signals = pages(bridge, "/v1/signals?limit=2", "signals")
    assert [len(p) for p in signals] == [2, 2, 2, 2, 1]
    unmapped = pages(bridge, "/v1/signals?unmapped=1&limit=1", "signals")
    assert [[s["fingerprint"] for s in p] for p in unmapped] == [["nowhere-2"], ["nowhere-1"]]


def test_bad_cursors_and_missing_incidents_are_named(bridge):
    for path, status, words in (
            ("/v1/incidents?before=x", 400, "before must be an integer"),
            ("/v1/signals?before=-1", 400, "before must be between 0 and"),
            ("/v1/incidents/1/timeline?after=99999999999999999999", 400, "after must be between 0 and"),
            ("/v1/incidents/1/signals?before=1", 400, "unknown query parameter 'before'"),
            ("/v1/incidents/7/timeline", 404, "no incident 7"),
            ("/v1/incidents/18446744073709551616/evidence", 404, "no incident 18446744073709551616")):
        response = bridge.admin("GET", path)
        assert response.status_code == status and words in response.json["message"], (path, response.json)


def test_the_cli_shows_the_whole_timeline_page_by_page(bridge, monkeypatch):
    bridge.post_alert(alert())
    bridge.settle()
    [inc] = bridge.store.list_incidents()
    for n in range(RECENT + 10):
        bridge.store.add_confirmation("compute-01", "ops", f"look {n}", bridge.clock(), 600, {})
    asked = []

    def request(method, url, json=None, timeout=None, headers=None):  # requests.request, served by the app
        path = url.removeprefix("http://bridge")
        asked.append(path)
        answer = bridge.client.open(path, method=method, json=json, headers=headers)
        return SimpleNamespace(status_code=answer.status_code, json=answer.get_json, text=answer.text)

    monkeypatch.setattr(requests, "request", request)
    result = CliRunner().invoke(main, ["incidents", "show", str(inc["id"]), "--url", "http://bridge"],
                                env={"HOSTDOWN_BRIDGE_TOKEN": ADMIN_TOKEN})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    total = bridge.admin("GET", f"/v1/incidents/{inc['id']}").json["counts"]["timeline"]
    assert sum(line.startswith("  20") for line in lines) == total > RECENT
    assert [line.split(": ", 1)[1] for line in lines if line.startswith("evidence:")] == \
        [f"manual by ops at 2026-11-24T12:00:00Z: look {n}" for n in range(RECENT + 10)]
    assert lines[-1] == f"signals: 1 (alertmanager 1 firing); /v1/incidents/{inc['id']}/signals"
    assert asked[1:] == [f"/v1/incidents/{inc['id']}/{name}?limit=1000" for name in ("timeline", "evidence")]


@pytest.mark.parametrize("query", ["limit=\u0661\u0660", "limit=1_0", "limit=%2010", "before=\u0661",
                                   "before=" + "9" * 5000, "limit=1e3"])
def test_query_numbers_are_ascii_digits_only(bridge, query):
    response = bridge.admin("GET", f"/v1/incidents?{query}")
    assert response.status_code == 400 and "must be" in response.json["message"]
