"""Slow and lying clients against the real gunicorn process: they hold no thread, and time out."""

import json
import socket

import pytest
import requests

from tests.conftest import sample
from tests.harness.bridge_process import WEBHOOK_TOKEN

pytestmark = pytest.mark.process

HALF_HEAD = b"POST /v1/alerts/alertmanager HTTP/1.1\r\nHost: bridge\r\nContent-Ty"
UNFINISHED_BODY = (b"POST /v1/alerts/alertmanager HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/json\r\n"
                   b"Content-Length: 100000\r\n\r\n{\"alerts\": [")


def open_sockets(bridge, first_bytes: bytes, count: int) -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", bridge.port))
        s.sendall(first_bytes)
        sockets.append(s)
    return sockets


def still_open(s: socket.socket) -> bool:
    s.setblocking(False)
    try:
        return s.recv(1) != b""  # pragma: no cover (the server sent something: not expected)
    except BlockingIOError:
        return True
    except OSError:
        return False


def answer(s: socket.socket) -> bytes:
    s.settimeout(30)
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    return data


def test_128_slow_clients_starve_neither_health_nor_webhooks(bridge_process):
    bridge = bridge_process(server={"header_timeout": 120, "body_timeout": 120})
    slow = open_sockets(bridge, HALF_HEAD, 64) + open_sockets(bridge, UNFINISHED_BODY, 64)
    try:
        # the bound: each answers within a second while all 128 are open
        assert requests.get(bridge.url + "/healthz", timeout=1).status_code == 200
        posted = requests.post(bridge.url + "/v1/alerts/alertmanager", data=sample("webhook_firing_api_v2.json"),
                               headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}",
                                        "Content-Type": "application/json"}, timeout=1)
        assert posted.status_code == 202
        assert all(still_open(s) for s in slow)
    finally:
        for s in slow:
            s.close()


def test_a_stalled_head_and_a_lying_content_length_are_timed_out_with_408(bridge_process):
    bridge = bridge_process(server={"header_timeout": 1, "body_timeout": 1})
    [stalled_head] = open_sockets(bridge, HALF_HEAD, 1)
    [stalled_body] = open_sockets(bridge, UNFINISHED_BODY, 1)
    head_answer, body_answer = answer(stalled_head), answer(stalled_body)
    assert head_answer.startswith(b"HTTP/1.1 408 ") and b"server.header_timeout" in head_answer
    assert body_answer.startswith(b"HTTP/1.1 408 ") and b"server.body_timeout" in body_answer


def test_a_chunked_body_over_the_limit_is_413_and_nothing_stored(bridge_process):
    bridge = bridge_process(server={"max_body_bytes": 2048})
    body = json.loads(sample("webhook_firing_api_v2.json"))
    body["pad"] = "x" * 4096
    data = json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {WEBHOOK_TOKEN}", "Content-Type": "application/json"}
    chunked = requests.post(bridge.url + "/v1/alerts/alertmanager", headers=headers,
                            data=iter([data[:1000], data[1000:3000], data[3000:]]), timeout=30)
    assert chunked.status_code == 413 and "server.max_body_bytes (2048)" in chunked.json()["message"]
    assert requests.post(bridge.url + "/v1/alerts/alertmanager", headers=headers, data=data,
                         timeout=30).status_code == 413
    assert bridge.request("GET", "/v1/signals").json()["signals"] == []


def test_pipelined_and_kept_alive_requests_are_all_answered(bridge_process):
    bridge = bridge_process()
    s = socket.create_connection(("127.0.0.1", bridge.port))
    get = b"GET /healthz HTTP/1.1\r\nHost: bridge\r\n\r\n"
    s.sendall(get + get + b"GET /healthz HTTP/1.1\r\nHost: bridge\r\nConnection: close\r\n\r\n")
    assert answer(s).count(b"HTTP/1.1 200 OK") == 3
