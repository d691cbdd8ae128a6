"""POST /v1/alerts/zabbix: the real Webhook media type payloads, and what goes wrong."""

import json
from datetime import datetime, timezone

import pytest

from bridge.rules import HOST_DOWN, classify
from bridge.sources import PayloadError, zabbix
from tests.conftest import sample_json
from tests.sources.shipped import default_rules


def problem() -> dict:
    return sample_json("zabbix/webhook_problem.json")["body"]


def recovery() -> dict:
    return sample_json("zabbix/webhook_resolved.json")["body"]


def encode(body: dict) -> bytes:
    return json.dumps(body).encode()


def changed(body: dict, **fields) -> bytes:
    return encode({**body, **fields})


def test_problem_maps_event_host_severity_and_tags():
    [signal] = zabbix.parse(encode(problem()))
    assert (signal.source, signal.fingerprint, signal.status) == ("zabbix", "26", "firing")
    assert signal.labels == {
        "host": "compute-01", "host_name": "compute-01", "host_ip": "127.0.0.1", "severity": "Disaster",
        "nseverity": "5", "trigger_id": "23133", "event_source": "0", "trigger": "Compute node compute-01 is down",
        "tag_scope": "availability", "tag_openstack_host": "compute-01",
    }
    assert signal.starts_at == datetime(2026, 11, 24, 19, 24, 12, tzinfo=timezone.utc)
    assert signal.ends_at is None
    # unresolved macros count as absent: no recovery id, no URL
    assert "recovery_event_id" not in signal.annotations and "url" not in signal.annotations
    assert signal.annotations["subject"] == "Problem: Compute node compute-01 is down"


def test_recovery_carries_the_problem_event_id_so_it_resolves_that_problem():
    [signal] = zabbix.parse(encode(recovery()))
    assert (signal.fingerprint, signal.status) == ("26", "resolved")
    assert signal.starts_at == datetime(2026, 11, 24, 19, 24, 12, tzinfo=timezone.utc)
    assert signal.ends_at == datetime(2026, 11, 24, 19, 24, 21, tzinfo=timezone.utc)
    assert signal.annotations["recovery_event_id"] == "27"


def test_default_rule_maps_problem_and_recovery_to_the_tagged_host():
    for body in (problem(), recovery()):
        [signal] = zabbix.parse(encode(body))
        mapping = classify(signal, default_rules())
        assert (mapping.rule, mapping.kind, mapping.candidate) == ("zabbix-host-unavailable", HOST_DOWN, "compute-01")


def test_a_low_severity_or_untagged_problem_matches_no_rule():
    low = zabbix.parse(changed(problem(), event_severity="Warning"))[0]
    untagged = zabbix.parse(changed(problem(), event_tags=[{"tag": "scope", "value": "availability"}]))[0]
    assert classify(low, default_rules()).kind == "unmatched"
    assert classify(untagged, default_rules()).kind == "unmatched"


def test_tags_as_json_text_repeated_tags_and_the_unresolved_tags_macro():
    tags = json.dumps([{"tag": "rack", "value": "r2"}, {"tag": "rack", "value": "r1"}, {"tag": "maint"}])
    [signal] = zabbix.parse(changed(problem(), event_tags=tags))
    assert signal.labels["tag_rack"] == "r1,r2" and signal.labels["tag_maint"] == ""
    [signal] = zabbix.parse(changed(problem(), event_tags="{EVENT.TAGSJSON}"))
    assert not any(k.startswith("tag_") for k in signal.labels)


def test_host_name_stands_in_when_the_technical_name_is_missing():
    [signal] = zabbix.parse(changed(problem(), host_host="{HOST.HOST}", host_name="Compute 01"))
    assert signal.labels["host"] == "Compute 01"


@pytest.mark.parametrize("body, message", [
    (b"{", "body is not JSON"),
    (b'"26"', "body: '26' is not of type 'object'"),
    (encode({k: v for k, v in problem().items() if k != "event_id"}), "body: 'event_id' is a required property"),
    (changed(problem(), event_id="{EVENT.ID}"), "event_id: empty or an unresolved macro ('{EVENT.ID}')"),
    (changed(problem(), event_id=" "), "event_id: empty or an unresolved macro (' ')"),
    (changed(problem(), event_id="26a"), "event_id: '26a' is not an event id (up to 20 digits)"),
    (changed(problem(), event_value="2"), "event_value: '2' is not '1' (problem) or '0' (recovery)"),
    (changed(problem(), event_value=1), "event_value: 1 is not of type 'string'"),
    (changed(problem(), host_host="{HOST.HOST}", host_name=""),
     "host_host: empty or an unresolved macro, and so is host_name"),
    (changed(problem(), event_tags="[{"), "event_tags is not the JSON of {EVENT.TAGSJSON}"),
    (changed(problem(), event_tags=[{"value": "x"}]), "event_tags[0]: 'tag' is a required property"),
    (changed(problem(), event_tags='[{"tag": 5}]'), "event_tags[0].tag: 5 is not of type 'string'"),
    (changed(problem(), event_time="7pm"), "event_date, event_time: '2026.11.24 7pm' is not 'YYYY.MM.DD HH:MM:SS'"),
])
def test_malformed_payload_names_the_field(body, message):
    with pytest.raises(PayloadError) as caught:
        zabbix.parse(body)
    assert message in str(caught.value)


# ---- through the API ----------------------------------------------------------------------

def stored(bridge):
    return bridge.store.list_signals(limit=1000)


def test_problem_then_recovery_before_fencing_cancels_the_incident(shipped_bridge):
    bridge = shipped_bridge
    response = bridge.post_alert(problem(), source="zabbix")
    assert response.status_code == 202 and response.json["signals"][0]["candidate_host"] == "compute-01"
    bridge.settle()
    assert bridge.only_incident()["state"] == "fencing"
    assert bridge.post_alert(recovery(), source="zabbix").status_code == 202
    bridge.settle()
    assert bridge.only_incident()["state"] == "cancelled"


def test_retries_and_update_operations_are_duplicates(shipped_bridge):
    bridge = shipped_bridge
    for _ in range(3):  # the media type's maxattempts after a 5xx
        assert bridge.post_alert(problem(), source="zabbix").status_code == 202
    update = bridge.post_alert({**problem(), "event_update_status": "1", "event_ack": "Yes"}, source="zabbix")
    assert update.status_code == 202 and update.json["duplicates"] == 1
    [row] = stored(bridge)
    assert row["repeats"] == 3


@pytest.mark.parametrize("body", [b"{", changed(problem(), event_value="{EVENT.VALUE}")])
def test_bad_body_is_400_and_nothing_stored(shipped_bridge, body):
    response = shipped_bridge.post_alert(body, source="zabbix")
    assert response.status_code == 400 and response.json["message"]
    assert stored(shipped_bridge) == []


def test_wrong_token_is_401_and_nothing_stored(shipped_bridge):
    response = shipped_bridge.post_alert(problem(), source="zabbix", token="nope")
    assert response.status_code == 401 and response.json["message"] == "wrong token for source 'zabbix'"
    assert stored(shipped_bridge) == []


def test_body_above_the_limit_is_413_and_nothing_stored(tmp_path):
    from tests.conftest import InProcessBridge

    bridge = InProcessBridge(tmp_path, server={"max_body_bytes": 2048})
    response = bridge.post_alert({**problem(), "alert_message": "x" * 4096}, source="zabbix")
    assert response.status_code == 413 and stored(bridge) == []
