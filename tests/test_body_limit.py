"""server.max_body_bytes holds for every transfer encoding, in the app and in the framing."""

import io
import json

import pytest

from bridge.framing import COMPLETE, MORE, TOO_LARGE, UNFRAMED, RequestFraming
from tests.conftest import sample_json
from tests.harness.bridge_process import ADMIN_TOKEN, WEBHOOK_TOKEN

LIMIT = 2048


def padded(size: int) -> bytes:
    """A valid Alertmanager body of exactly `size` bytes."""
    body = sample_json("webhook_firing_api_v2.json")
    body["pad"] = ""
    body["pad"] = "x" * (size - len(json.dumps(body).encode()))
    data = json.dumps(body).encode()
    assert len(data) == size
    return data


def post_chunked(bridge, data: bytes):
    # gunicorn terminates a chunked body and says so, as werkzeug expects
    return bridge.client.post("/v1/alerts/alertmanager", input_stream=io.BytesIO(data),
                              headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}", "Transfer-Encoding": "chunked"},
                              content_type="application/json", environ_overrides={"wsgi.input_terminated": True})


def test_a_chunked_body_over_the_limit_is_413_and_nothing_stored(make_bridge):
    small = make_bridge(server={"max_body_bytes": LIMIT})
    response = post_chunked(small, padded(LIMIT + 1))
    assert response.status_code == 413
    assert "server.max_body_bytes (2048)" in response.json["message"]
    assert small.store.list_signals() == []


def test_a_chunked_body_at_the_limit_is_taken(make_bridge):
    small = make_bridge(server={"max_body_bytes": LIMIT})
    assert post_chunked(small, padded(LIMIT)).status_code == 202


@pytest.mark.parametrize("size, status", [(LIMIT, 202), (LIMIT + 1, 413)])
def test_content_length_at_and_over_the_limit(make_bridge, size, status):
    small = make_bridge(server={"max_body_bytes": LIMIT})
    assert small.post_alert(padded(size)).status_code == status


def test_an_admin_body_over_the_limit_chunked_is_413(make_bridge):
    small = make_bridge(server={"max_body_bytes": LIMIT})
    body = json.dumps({"reason": "x" * (LIMIT * 2)}).encode()
    response = small.client.post("/v1/incidents/1/close", input_stream=io.BytesIO(body),
                                 headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Transfer-Encoding": "chunked"},
                                 content_type="application/json", environ_overrides={"wsgi.input_terminated": True})
    assert response.status_code == 413


# ---- framing, as the serving worker sees the bytes arrive ----------------------------------

HEAD = b"POST /v1/alerts/alertmanager HTTP/1.1\r\nHost: x\r\n"


def framing() -> RequestFraming:
    return RequestFraming(max_head=8192, max_body=LIMIT)


def test_framing_waits_for_the_whole_head_and_body():
    f = framing()
    assert f.feed(HEAD) == MORE and not f.in_body
    assert f.feed(b"Content-Length: 4\r\n\r\nab") == MORE and f.in_body
    assert f.feed(b"cd") == COMPLETE


def test_framing_of_a_request_without_body():
    assert framing().feed(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n") == COMPLETE


def test_framing_of_chunks_fed_byte_by_byte():
    f = framing()
    request = HEAD + b"Transfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: t\r\n\r\n"
    states = [f.feed(request[i:i + 1]) for i in range(len(request))]
    assert states[-1] == COMPLETE and set(states[:-1]) == {MORE}


def test_framing_refuses_a_body_over_the_limit_before_it_arrives():
    assert framing().feed(HEAD + b"Content-Length: %d\r\n\r\n" % (LIMIT + 1)) == TOO_LARGE
    assert framing().feed(HEAD + b"Transfer-Encoding: chunked\r\n\r\n%x\r\n" % (LIMIT + 1)) == TOO_LARGE
    many = framing()
    many.feed(HEAD + b"Transfer-Encoding: chunked\r\n\r\n")
    for _ in range(LIMIT // 100):
        assert many.feed(b"64\r\n" + b"x" * 100 + b"\r\n") == MORE
    assert many.feed(b"64\r\n") == TOO_LARGE


@pytest.mark.parametrize("head", [
    b"Content-Length: 1\r\nContent-Length: 2\r\n",
    b"Content-Length: -1\r\n",
    b"Transfer-Encoding: gzip\r\n",
    b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n",
])
def test_framing_leaves_ambiguous_requests_to_the_parser(head):
    assert framing().feed(HEAD + head + b"\r\n") == UNFRAMED


def test_framing_gives_up_on_a_head_over_the_limit():
    assert framing().feed(HEAD + b"X: " + b"y" * 9000) == UNFRAMED
