"""What fuzzing the OpenAPI document found, pinned: each answer is a precise 4xx."""

import pytest

from bridge.hostnames import check_host_name

ID_TOO_LARGE = 2**63


@pytest.mark.parametrize("action", ["close", "retry"])
@pytest.mark.parametrize("reason", [" \t\n ", 5, None, ["x"]])
def test_a_reason_that_is_blank_or_not_a_string_is_400(bridge, action, reason):
    response = bridge.admin("POST", f"/v1/incidents/1/{action}", json={"reason": reason})
    assert response.status_code == 400 and response.json["message"].startswith("reason:")


@pytest.mark.parametrize("path, name", [("/v1/incidents", "open"), ("/v1/signals", "unmapped")])
def test_a_flag_is_1_0_true_or_false(bridge, path, name):
    response = bridge.admin("GET", f"{path}?{name}=AAA")
    assert response.status_code == 400 and response.json["message"] == f"{name}: must be one of 1, 0, true, false"
    for value in ("1", "0", "true", "false"):
        assert bridge.admin("GET", f"{path}?{name}={value}").status_code == 200


def test_an_unknown_query_parameter_is_400(bridge):
    response = bridge.admin("GET", "/v1/signals?unmaped=1")
    assert response.status_code == 400 and "unknown query parameter 'unmaped'" in response.json["message"]


def test_an_incident_id_beyond_64_bits_is_404(bridge):
    assert bridge.admin("GET", f"/v1/incidents/{ID_TOO_LARGE}").status_code == 404
    response = bridge.admin("POST", f"/v1/incidents/{ID_TOO_LARGE}/close", json={"reason": "test"})
    assert response.status_code == 404


def test_a_405_names_the_allowed_methods(bridge):
    response = bridge.client.delete("/v1/incidents")
    assert response.status_code == 405 and set(response.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}
    assert response.json["error"] == "Method Not Allowed"


@pytest.mark.parametrize("quoted, why", [
    ("%2E%2E", "host: starts with '.'"),
    ("a%00b", "host: character '\\x00' not allowed (letters, digits, '-', '_', '.')"),
    ("x%3Brm%20-rf%20~", "host: character ';' not allowed (letters, digits, '-', '_', '.')"),
])
def test_fence_confirmation_refuses_a_host_name_nova_cannot_have(bridge, quoted, why):
    response = bridge.admin("POST", f"/v1/hosts/{quoted}/fence-confirmation", json={"reason": "PDU off"})
    assert response.status_code == 400 and response.json["message"] == why
    assert bridge.store.list_signals() == [] and bridge.store.list_incidents() == []


@pytest.mark.parametrize("name", ["compute-01", "compute-02.example.org", "cn_7", "10.0.0.7", "a" * 255])
def test_host_names_nova_can_have(name):
    assert check_host_name(name) is None


@pytest.mark.parametrize("name, why", [
    ("", "host: empty"),
    ("a" * 256, "host: longer than 255 characters"),
    (".compute", "host: starts with '.'"),
    ("compute..example", "host: contains '..'"),
    ("comp ute", "host: character ' ' not allowed (letters, digits, '-', '_', '.')"),
    ("compüte", "host: character 'ü' not allowed (letters, digits, '-', '_', '.')"),
    ("a\nb", "host: character '\\n' not allowed (letters, digits, '-', '_', '.')"),
])
def test_host_names_nova_cannot_have(name, why):
    assert check_host_name(name) == why


@pytest.mark.parametrize("body", ['{"reason": "off \\ud800"}', '{"reason": "off", "operator": "a\\u0000b"}',
                                  '{"reason": "off", "x": ' + "[" * 200_000 + "]" * 200_000 + "}"])
@pytest.mark.parametrize("path", ["/v1/hosts/compute-01/fence-confirmation", "/v1/incidents/1/close"])
def test_admin_bodies_no_database_stores_are_400_and_store_nothing(bridge, body, path):
    response = bridge.admin("POST", path, data=body, content_type="application/json")
    # 400 for a field the endpoint takes; close takes no operator, and there is no incident 1
    assert response.status_code == (404 if "operator" in body and "close" in path else 400), response.json
    assert bridge.store.open_incident_for("compute-01") is None
    with bridge.store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM evidence").scalar() == 0
