"""Hostile input to the operator endpoints that change state (approve, cancel, pause, resume,
return): each gets a precise 4xx naming the field and why, never a 5xx, and stores nothing."""

import io
import json

import pytest
import sqlalchemy as sa

from bridge.store.tables import metadata
from tests.conftest import sample_json
from tests.harness.bridge_process import ADMIN_TOKEN, WEBHOOK_TOKEN

LIMIT = 1_000_000  # a deeply nested body fits under it
APPROVE = {"gate": "mass_limit"}  # approve names a gate; the field at fault is another one

# every endpoint, as (path, the rest of a valid body)
ENDPOINTS = [("/v1/incidents/{id}/approve", APPROVE), ("/v1/incidents/{id}/cancel", {}),
             ("/v1/pause", {}), ("/v1/resume", {}), ("/v1/hosts/compute-01/return", {})]
PATHS = [path for path, _ in ENDPOINTS]


@pytest.fixture
def target(make_bridge, fake_nova):
    """A bridge that knows Nova's hosts, with an open incident for compute-01."""
    bridge = make_bridge(fake_nova, nova={"cloud": "fake"}, server={"max_body_bytes": LIMIT})
    assert bridge.post_alert(sample_json("webhook_firing_api_v2.json")).status_code == 202
    bridge.engine.intake_pending()
    bridge.incident_id = bridge.store.open_incident_for("compute-01")["id"]
    return bridge


def database(bridge) -> dict:
    """Every row of every table: what a refused request must leave as it was."""
    with bridge.store.engine.connect() as conn:
        return {table.name: conn.execute(sa.select(table)).all() for table in metadata.sorted_tables}


def post(bridge, path: str, data: bytes | str, token: str | None = ADMIN_TOKEN,
         content_type: str = "application/json", headers: dict | None = None, **kwargs):
    headers = {**({"Authorization": f"Bearer {token}"} if token else {}), **(headers or {})}
    return bridge.client.post(path.format(id=bridge.incident_id), data=data, headers=headers,
                              content_type=content_type, **kwargs)


def refused(bridge, path: str, data, status: int, message: str, **kwargs) -> None:
    """The request gets `status` with `message`, and the database is as it was."""
    before = database(bridge)
    response = post(bridge, path, data if isinstance(data, (bytes, str)) else json.dumps(data), **kwargs)
    assert (response.status_code, response.json["message"]) == (status, message)
    assert database(bridge) == before


@pytest.mark.parametrize("path, rest", ENDPOINTS)
def test_a_valid_request_goes_through(target, path, rest):
    """The baseline the refusals below differ from by one field (return: not out of service yet)."""
    response = post(target, path, json.dumps({"reason": "ticket 42", **rest}))
    assert response.status_code == (409 if "return" in path else 200), response.json


@pytest.mark.parametrize("path", PATHS)
def test_a_body_over_the_limit_is_413_with_content_length_or_chunked(target, path):
    body = json.dumps({"reason": "x" * LIMIT}).encode()
    message = f"body larger than server.max_body_bytes ({LIMIT})"
    refused(target, path, body, 413, message)
    refused(target, path, b"", 413, message, input_stream=io.BytesIO(body),
            headers={"Transfer-Encoding": "chunked"},
            environ_overrides={"wsgi.input_terminated": True})


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("body", ["[]", '"reason"', "5", "null", "", "{", b"\xff\xfe{}",
                                  '{"reason": "x", "deep": ' + "[" * 100_000 + "]" * 100_000 + "}"])
def test_a_body_that_is_no_json_object_is_400(target, path, body):
    refused(target, path, body, 400, "body must be a JSON object")


@pytest.mark.parametrize("path, rest", ENDPOINTS)
@pytest.mark.parametrize("reason, message", [
    (" \t\n ", "reason: required, a string that is not blank"),
    ("", "reason: required, a string that is not blank"),
    (None, "reason: required, a string that is not blank"),
    (["ticket"], "reason: required, a string that is not blank"),
    ("off \ud800", "reason: contains a lone surrogate ('\\ud800'), which is not a character"),
    ("a\x00b", "reason: contains a NUL character, which no database stores"),
])
def test_a_reason_no_database_stores_or_blank_is_400(target, path, rest, reason, message):
    refused(target, path, {"reason": reason, **rest}, 400, message)


def test_a_missing_reason_is_400(target):
    for path, rest in ENDPOINTS:
        refused(target, path, rest, 400, "reason: required, a string that is not blank")


@pytest.mark.parametrize("action, rest", [("approve", APPROVE), ("cancel", {})])
@pytest.mark.parametrize("incident_id", [2**63, 2**64, 10**40, 0, 999_999])
def test_an_incident_that_cannot_exist_or_does_not_is_404(target, action, rest, incident_id):
    refused(target, f"/v1/incidents/{incident_id}/{action}", {"reason": "x", **rest}, 404,
            f"no incident {incident_id}")


@pytest.mark.parametrize("action, rest", [("approve", APPROVE), ("cancel", {})])
@pytest.mark.parametrize("incident_id", ["-1", "1.5", "0x1", "%EF%BC%91", "%D9%A1", "1%0A", "%201"])
def test_an_incident_id_that_is_no_natural_number_matches_no_route(target, action, rest, incident_id):
    """Only ASCII digits name an incident: '\uff11' or '\u0661' (1 in other scripts) is no id."""
    assert target.incident_id == 1  # what such an id would act on
    refused(target, f"/v1/incidents/{incident_id}/{action}", {"reason": "x", **rest}, 404,
            "The requested URL was not found on the server. If you entered the URL manually please check "
            "your spelling and try again.")


@pytest.mark.parametrize("quoted, message", [
    ("compute-99", "no nova-compute service on host 'compute-99'"),
    ("compute-01%0Aforged", "host: character '\\n' not allowed (letters, digits, '-', '_', '.')"),
    ("compute-01%1B%5B2J", "host: character '\\x1b' not allowed (letters, digits, '-', '_', '.')"),
    ("a%00b", "host: character '\\x00' not allowed (letters, digits, '-', '_', '.')"),
    ("%ED%A0%80", "host: character '\ufffd' not allowed (letters, digits, '-', '_', '.')"),
    ("%2E%2E", "host: starts with '.'"),
    ("%20", "host: character ' ' not allowed (letters, digits, '-', '_', '.')"),
])
def test_return_refuses_a_host_nova_cannot_have_or_does_not(target, quoted, message):
    refused(target, f"/v1/hosts/{quoted}/return", {"reason": "x"}, 404 if "99" in quoted else 400, message)


@pytest.mark.parametrize("path, rest", ENDPOINTS)
@pytest.mark.parametrize("token, message", [(None, "missing bearer token"), ("wrong", "wrong admin token"),
                                            (WEBHOOK_TOKEN, "wrong admin token"), (" ", "missing bearer token")])
def test_without_the_admin_token_it_is_401(target, path, rest, token, message):
    before = database(target)
    response = post(target, path, json.dumps({"reason": "x", **rest}), token=token)
    assert (response.status_code, response.json["message"]) == (401, message)
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert database(target) == before


@pytest.mark.parametrize("path, rest", ENDPOINTS)
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                                          "application/xml"])
def test_a_body_that_is_not_declared_json_is_415(target, path, rest, content_type):
    refused(target, path, {"reason": "x", **rest}, 415, f"Content-Type: must be application/json, not {content_type}",
            content_type=content_type)


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "application/merge-patch+json"])
def test_json_content_types_with_parameters_or_suffix_are_taken(target, content_type):
    response = post(target, "/v1/pause", json.dumps({"reason": "x"}), content_type=content_type)
    assert response.status_code == 200 and response.json["paused"]
