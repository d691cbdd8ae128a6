"""POST /v1/alerts/alertmanager: every bad input gets its precise status and stores nothing."""

import json

import pytest

from bridge import sources
from tests.conftest import sample, sample_json
from tests.harness.bridge_process import ADMIN_TOKEN


def stored(bridge) -> list[dict]:
    return bridge.store.list_signals(limit=1000)


def test_real_payload_is_stored_before_202(bridge):
    response = bridge.post_alert(sample("webhook_firing_api_v2.json"))
    assert response.status_code == 202
    assert response.json["accepted"] == 1 and response.json["duplicates"] == 0
    [row] = stored(bridge)
    assert row["fingerprint"] == "51b6a9b12c35f6d3" and row["status"] == "firing"
    assert row["labels"]["openstack_host"] == "compute-01"
    assert row["rule"] == "compute-host-down" and row["candidate_host"] == "compute-01"
    assert row["ends_at"] is None  # Go's zero time on a firing alert means "not set"


def test_grouped_and_truncated_payload_stores_every_alert_sent(bridge):
    response = bridge.post_alert(sample("webhook_grouped_truncated.json"))
    assert response.status_code == 202 and response.json["accepted"] == 2
    assert {r["candidate_host"] for r in stored(bridge)} == {"compute-01", "compute-02"}


def test_resolved_alerts_are_recorded_too(bridge):
    response = bridge.post_alert(sample("webhook_resolved_api_v2.json"))
    assert response.status_code == 202
    [row] = stored(bridge)
    assert row["status"] == "resolved" and row["ends_at"] is not None


def test_a_replay_is_acknowledged_and_counted_not_stored_twice(bridge):
    for _ in range(3):
        assert bridge.post_alert(sample("webhook_firing_api_v2.json")).status_code == 202
    response = bridge.post_alert(sample("webhook_firing_api_v2.json"))
    assert response.json["duplicates"] == 1
    [row] = stored(bridge)
    assert row["repeats"] == 3


def firing():
    return sample_json("webhook_firing_api_v2.json")


def mutate(change):
    body = firing()
    change(body)
    return json.dumps(body)


@pytest.mark.parametrize("body, message", [
    (b"{not json", "body is not JSON: Expecting property name enclosed in double quotes at line 1 column 2"),
    (b"\xff\xfe", "body is not UTF-8"),
    (b"[]", "body: [] is not of type 'object'"),
    (mutate(lambda b: b.update(version="3")), "version: '4' was expected"),
    (mutate(lambda b: b.pop("alerts")), "body: 'alerts' is a required property"),
    (mutate(lambda b: b.update(alerts=[])), "alerts: [] should be non-empty"),
    (mutate(lambda b: b["alerts"][0].update(status="fire")), "alerts[0].status: 'fire' is not one of"),
    (mutate(lambda b: b["alerts"][0].update(startsAt="yesterday")), "alerts[0].startsAt: 'yesterday' is not an RFC 3339 time"),
    (mutate(lambda b: b["alerts"][0]["labels"].update(severity=3)), "alerts[0].labels.severity: 3 is not of type 'string'"),
    (mutate(lambda b: b["alerts"][0].pop("fingerprint")), "alerts[0]: 'fingerprint' is a required property"),
])
def test_malformed_body_is_400_with_a_precise_reason_and_nothing_stored(bridge, body, message):
    response = bridge.post_alert(body)
    assert response.status_code == 400
    assert message in response.json["message"]
    assert stored(bridge) == []


@pytest.mark.parametrize("token, why", [
    (None, "missing bearer token"),
    ("wrong", "wrong token for source 'alertmanager'"),
    (ADMIN_TOKEN, "wrong token for source 'alertmanager'"),  # the admin token is not a webhook token
])
def test_missing_or_wrong_token_is_401_and_nothing_stored(bridge, token, why):
    response = bridge.post_alert(sample("webhook_firing_api_v2.json"), token=token)
    assert response.status_code == 401
    assert response.json["message"] == why
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert stored(bridge) == []


def test_basic_auth_is_not_a_bearer_token(bridge):
    response = bridge.client.post("/v1/alerts/alertmanager", data=sample("webhook_firing_api_v2.json"),
                                  headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert response.status_code == 401 and stored(bridge) == []


def test_body_above_the_limit_is_413_and_nothing_stored(make_bridge):
    small = make_bridge(server={"max_body_bytes": 2048})
    body = firing()
    body["alerts"][0]["annotations"]["description"] = "x" * 4096
    response = small.post_alert(body)
    assert response.status_code == 413
    assert stored(small) == []
    assert small.post_alert(firing()).status_code == 202  # under the limit still works


def test_unknown_source_is_404(bridge):
    response = bridge.post_alert(sample("webhook_firing_api_v2.json"), source="graphite")
    assert response.status_code == 404 and "unknown source 'graphite'" in response.json["message"]


def test_store_failure_is_503_so_the_sender_retries(bridge):
    bridge.store.engine.dispose()
    with bridge.store.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE signals")
    response = bridge.post_alert(sample("webhook_firing_api_v2.json"))
    assert response.status_code == 503


def test_the_same_instant_at_another_utc_offset_is_a_duplicate(bridge):
    for starts_at in ("2026-11-24T19:17:07.392108Z", "2026-11-24T20:17:07.392108+01:00",
                      "2026-11-24T14:47:07.392108-04:30"):
        body = firing()
        body["alerts"][0]["startsAt"] = starts_at
        assert bridge.post_alert(body).status_code == 202
    [row] = stored(bridge)
    assert row["repeats"] == 2


def test_dedup_keys_stay_those_written_for_utc_times_before():
    """Rows stored before keep matching: a UTC time's key is what isoformat() wrote then."""
    [signal] = sources.parse("alertmanager", sample("webhook_firing_api_v2.json"))
    assert signal.dedup_key == "alertmanager|51b6a9b12c35f6d3|2026-11-24T19:17:07.392108+00:00|firing"
