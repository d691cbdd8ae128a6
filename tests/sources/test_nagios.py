"""POST /v1/alerts/nagios and /v1/alerts/icinga2: bodies the shipped command and script build
from macros captured on real Nagios 4 and Icinga 2 systems."""

import json
from datetime import datetime, timezone

import pytest

from bridge.rules import HOST_DOWN, UNMATCHED, classify
from bridge.sources import PayloadError, icinga2, nagios
from tests.conftest import sample_json
from tests.sources.shipped import NAGIOS_CAPTURED, default_rules, icinga2_body, icinga2_calls, nagios_body


def encode(body: dict) -> bytes:
    return json.dumps(body).encode()


def parse(capture: str):
    [signal] = nagios.parse(encode(nagios_body(capture)))
    return signal


def mapped(signal):
    mapping = classify(signal, default_rules())
    return mapping.rule, mapping.kind, mapping.candidate


def test_hard_host_down_notification_is_a_host_fault():
    signal = parse("host_notification_PROBLEM.json")
    assert (signal.source, signal.fingerprint, signal.status) == ("nagios", "compute-01/HARD", "firing")
    assert signal.labels == {
        "object": "host", "host": "compute-01", "address": "127.0.0.1", "state": "DOWN", "state_type": "HARD",
        "attempt": "3", "max_attempts": "3", "notification_type": "PROBLEM", "downtime_depth": "0",
    }
    assert signal.annotations == {"output": "CRITICAL - state file says down"}  # from $NAGIOS_HOSTOUTPUT
    assert signal.starts_at == datetime.fromtimestamp(1795548045, timezone.utc)  # the last state change
    assert mapped(signal) == ("nagios-host-down", HOST_DOWN, "compute-01")


def test_the_hard_event_handler_call_and_the_notification_are_one_signal():
    assert parse("host_event_handler_DOWN_HARD_3.json").dedup_key == parse("host_notification_PROBLEM.json").dedup_key


def test_soft_attempt_is_recorded_but_matches_no_rule_and_never_masks_the_hard_state():
    soft = parse("host_event_handler_DOWN_SOFT_1.json")
    assert soft.labels["state_type"] == "SOFT" and soft.status == "firing"
    assert mapped(soft) == (None, UNMATCHED, None)
    hard = nagios.parse(encode({**nagios_body("host_event_handler_DOWN_SOFT_1.json"), "state_type": "HARD"}))[0]
    assert hard.starts_at == soft.starts_at and hard.dedup_key != soft.dedup_key


def test_recovery_resolves_the_hard_problem_of_the_same_host():
    problem, recovery = parse("host_notification_PROBLEM.json"), parse("host_notification_RECOVERY.json")
    assert recovery.status == "resolved" and recovery.fingerprint == problem.fingerprint
    assert recovery.ends_at == recovery.starts_at == datetime.fromtimestamp(1795548049, timezone.utc)
    assert mapped(recovery) == ("nagios-host-down", HOST_DOWN, "compute-01")


def test_passive_hard_down_counts_too():
    assert mapped(parse("host_notification_PROBLEM_passive_external_cmd.json"))[1] == HOST_DOWN


def test_service_states_carry_the_service_and_match_only_the_optional_rule():
    soft = parse("service_event_handler_CRITICAL_SOFT.json")
    problem = parse("service_notification_PROBLEM.json")
    recovery = parse("service_notification_RECOVERY.json")
    assert problem.fingerprint == recovery.fingerprint == "compute-01!nova-compute/HARD"
    assert (problem.status, recovery.status) == ("firing", "resolved")
    assert problem.labels["object"] == "service" and problem.labels["service"] == "nova-compute"
    assert all(mapped(s)[1] == UNMATCHED for s in (soft, problem, recovery))  # not configured by default
    optional = [{"name": "nova-compute", "source": "nagios", "kind": "host_down",
                 "match": {"object": "service", "service": "nova-compute", "state_type": "HARD"},
                 "match_re": {"state": "CRITICAL|OK"}, "host": {"template": "{{ labels.host }}"}}]
    assert classify(problem, optional).kind == classify(recovery, optional).kind == HOST_DOWN
    assert classify(soft, optional).kind == UNMATCHED
    warning = nagios.parse(encode({**nagios_body("service_notification_PROBLEM.json"), "state": "WARNING"}))[0]
    assert classify(warning, optional).kind == UNMATCHED


def test_hard_down_in_scheduled_downtime_matches_no_default_rule():
    body = {**nagios_body("host_event_handler_DOWN_HARD_3.json"), "downtime_depth": "1"}
    assert mapped(nagios.parse(encode(body))[0])[1] == UNMATCHED


def test_openstack_host_label_names_the_nova_host():
    body = {**nagios_body("host_notification_PROBLEM.json"), "labels": {"openstack_host": "c1.example.org"}}
    assert mapped(nagios.parse(encode(body))[0])[2] == "c1.example.org"


def test_icinga2_calls_map_like_nagios():
    """Icinga reports attempt 1 at the HARD transition; only state_type decides."""
    signals = [icinga2.parse(encode(icinga2_body(call["vars"])))[0] for call in icinga2_calls()]
    assert {s.source for s in signals} == {"icinga2"}
    seen = [(s.labels["state"], s.labels["state_type"], s.labels.get("notification_type"), s.status)
            for s in signals]
    assert seen == [("UP", "HARD", None, "resolved"), ("DOWN", "SOFT", None, "firing"),
                    ("DOWN", "SOFT", None, "firing"), ("DOWN", "HARD", None, "firing"),
                    ("DOWN", "HARD", "PROBLEM", "firing"), ("UP", "HARD", "RECOVERY", "resolved"),
                    ("UP", "HARD", None, "resolved")]
    # the two SOFT attempts are one signal, the HARD event and its notification another
    assert len({s.dedup_key for s in signals[1:3]}) == 1 and signals[3].dedup_key == signals[4].dedup_key
    assert signals[4].fingerprint == signals[5].fingerprint == "compute-01/HARD"
    assert signals[4].labels["attempt"] == "1" and signals[4].labels["openstack_host"] == "compute-01"


def body(**fields):
    return encode({**nagios_body("host_notification_PROBLEM.json"), **fields})


@pytest.mark.parametrize("data, message", [
    (b"\xff", "body is not UTF-8"),
    (b"[1]", "body: [1] is not of type 'object'"),
    (encode({"state": "DOWN", "state_type": "HARD", "last_state_change": "1"}), "body: 'host' is a required property"),
    (body(host=""), "host: must not be empty"),
    (body(host=["compute-01"]), "host: ['compute-01'] is not of type 'string'"),
    (body(state="OK"), "state: 'OK' is not a host state (UP, DOWN, UNREACHABLE)"),
    (body(service="nova-compute", state="DOWN"), "state: 'DOWN' is not a service state (OK, WARNING, CRITICAL"),
    (body(state_type="FIRM"), "state_type: 'FIRM' is not HARD or SOFT"),
    (body(last_state_change="yesterday"), "last_state_change: 'yesterday' is not a number"),
    (body(last_state_change=""), "last_state_change: must not be empty"),
    (body(last_state_change="9" * 30), "last_state_change: '999999999999999999999999999999' is not a time"),
    (body(attempt="3rd"), "attempt: '3rd' is not a number"),
    (body(labels={"openstack_host": 1}), "labels.openstack_host: 1 is not of type 'string'"),
])
def test_malformed_body_names_the_field(data, message):
    with pytest.raises(PayloadError) as caught:
        nagios.parse(data)
    assert message in str(caught.value)


def test_lower_case_states_from_a_hand_written_sender_are_accepted():
    [signal] = nagios.parse(body(state="down", state_type="hard", notification_type="problem"))
    assert (signal.labels["state"], signal.labels["state_type"], signal.labels["notification_type"]) == \
        ("DOWN", "HARD", "PROBLEM")


# ---- through the API ----------------------------------------------------------------------

def stored(bridge):
    return bridge.store.list_signals(limit=1000)


@pytest.mark.parametrize("source", ["nagios", "icinga2"])
def test_soft_attempts_are_stored_and_start_nothing_hard_down_opens_and_recovery_cancels(shipped_bridge, source):
    bridge = shipped_bridge
    soft = nagios_body("host_event_handler_DOWN_SOFT_1.json") | {"host": "compute-01"}
    response = bridge.post_alert(soft, source=source)
    assert response.status_code == 202 and response.json["signals"][0]["kind"] == "unmatched"
    bridge.settle()
    assert bridge.store.list_incidents() == []
    for capture in ("host_event_handler_DOWN_HARD_3.json", "host_notification_PROBLEM.json"):
        assert bridge.post_alert(nagios_body(capture), source=source).status_code == 202
    bridge.settle()
    incident = bridge.only_incident()
    assert incident["host"] == "compute-01" and incident["state"] == "fencing"
    assert bridge.post_alert(nagios_body("host_notification_RECOVERY.json"), source=source).status_code == 202
    bridge.settle()
    assert bridge.only_incident()["state"] == "cancelled"
    assert [r["repeats"] for r in stored(bridge)] == [0, 1, 0]  # recovery, HARD (event + notification), SOFT


@pytest.mark.parametrize("source", ["nagios", "icinga2"])
def test_bad_body_is_400_and_nothing_stored(shipped_bridge, source):
    response = shipped_bridge.post_alert(body(state_type="FIRM"), source=source)
    assert response.status_code == 400 and response.json["message"] == "state_type: 'FIRM' is not HARD or SOFT"
    assert stored(shipped_bridge) == []


@pytest.mark.parametrize("source", ["nagios", "icinga2"])
def test_missing_token_is_401_and_nothing_stored(shipped_bridge, source):
    response = shipped_bridge.post_alert(body(), source=source, token=None)
    assert response.status_code == 401 and stored(shipped_bridge) == []


def test_body_above_the_limit_is_413_and_nothing_stored(tmp_path):
    from tests.conftest import InProcessBridge

    bridge = InProcessBridge(tmp_path, server={"max_body_bytes": 2048})
    response = bridge.post_alert(body(output="x" * 4096), source="nagios")
    assert response.status_code == 413 and stored(bridge) == []


@pytest.mark.parametrize("capture", sorted(p.name for p in NAGIOS_CAPTURED.iterdir()))
def test_sample_bodies_are_what_the_shipped_command_sends_for_the_captured_macros(capture):
    """tests/samples/nagios/*.json (used by `rules test` and its docs) stay in step with the templates."""
    assert sample_json(f"nagios/{capture}") == nagios_body(capture)
