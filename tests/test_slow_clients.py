"""Slow and lying clients against the real gunicorn process: they hold no thread, and time out."""

import json
import socket
import ssl

import pytest
import requests

from tests.conftest import sample
from tests.harness.bridge_process import WEBHOOK_TOKEN, BridgeProcess, base_config
from tests.test_serving import self_signed, wait_https

pytestmark = pytest.mark.process

HALF_HEAD = b"POST /v1/alerts/alertmanager HTTP/1.1\r\nHost: bridge\r\nContent-Ty"
UNFINISHED_BODY = (b"POST /v1/alerts/alertmanager HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/json\r\n"
                   b"Content-Length: 100000\r\n\r\n{\"alerts\": [")


def open_sockets(bridge, first_bytes: bytes, count: int, tls: ssl.SSLContext | None = None) -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", bridge.port), timeout=5)  # a starved server fails, not hangs
        if tls is not None:
            s = tls.wrap_socket(s, server_hostname="127.0.0.1")
        s.sendall(first_bytes)
        sockets.append(s)
    return sockets


def still_open(s: socket.socket) -> bool:
    s.setblocking(False)
    try:
        return s.recv(1) != b""  # pragma: no cover (the server sent something: not expected)
    except (BlockingIOError, ssl.SSLWantReadError):
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


# the first 6 bytes of a TLS ClientHello's record: the rest never comes
HALF_HANDSHAKE = b"\x16\x03\x01\x02\x00\x01"


@pytest.fixture
def tls_bridge(tmp_path):
    """Factory: a bridge served over HTTPS (server.tls, bridge.url https), a client context
    trusting it, and its certificate."""
    cert, key = self_signed(tmp_path)
    started = []

    def start(**server):
        bridge = BridgeProcess(tmp_path, base_config(tmp_path, server={
            **server, "tls": {"certfile": str(cert), "keyfile": str(key)}}), workers=1)
        started.append(bridge)
        bridge.process.start()
        bridge.url = bridge.url.replace("http://", "https://")
        wait_https(bridge, bridge.url, cert)
        return bridge, ssl.create_default_context(cafile=cert), cert

    yield start
    for bridge in started:
        bridge.kill()


def test_over_tls_slow_clients_and_stalled_handshakes_starve_nothing(tls_bridge):
    bridge, tls, cert = tls_bridge(header_timeout=120, body_timeout=120)
    url = bridge.url
    slow = (open_sockets(bridge, HALF_HANDSHAKE, 64) + open_sockets(bridge, HALF_HEAD, 64, tls)
            + open_sockets(bridge, UNFINISHED_BODY, 64, tls))
    try:
        assert requests.get(url + "/healthz", verify=cert, timeout=1).status_code == 200
        headers = {"Authorization": f"Bearer {WEBHOOK_TOKEN}", "Content-Type": "application/json"}
        with requests.Session() as session:  # kept alive: the poller's answer, then a thread's (a large body)
            body = json.loads(sample("webhook_firing_api_v2.json"))
            for n in range(3):
                body["alerts"][0]["fingerprint"] = f"tls-{n}"
                body["pad"] = "x" * (100_000 if n == 2 else 0)
                posted = session.post(url + "/v1/alerts/alertmanager", data=json.dumps(body), headers=headers,
                                      verify=cert, timeout=1)
                assert posted.status_code == 202, posted.text
        assert all(still_open(s) for s in slow)
    finally:
        for s in slow:
            s.close()
    stored = bridge.request("GET", "/v1/signals", verify=cert).json()["signals"]
    assert sorted(s["fingerprint"] for s in stored) == ["tls-0", "tls-1", "tls-2"]


def test_over_tls_a_stalled_handshake_is_closed_and_a_stalled_head_gets_408(tls_bridge):
    bridge, tls, _ = tls_bridge(header_timeout=1, body_timeout=1)
    [handshake] = open_sockets(bridge, HALF_HANDSHAKE, 1)
    [head] = open_sockets(bridge, HALF_HEAD, 1, tls)
    assert answer(handshake) == b""  # closed: no TLS session to answer in
    head_answer = answer(head)
    assert head_answer.startswith(b"HTTP/1.1 408 ") and b"server.header_timeout" in head_answer
    plain = socket.create_connection(("127.0.0.1", bridge.port))  # not TLS at all: closed, never served
    plain.sendall(b"GET /healthz HTTP/1.1\r\nHost: bridge\r\n\r\n")
    try:
        got = answer(plain)
    except ConnectionResetError:  # closed with its request unread
        got = b""
    assert b"HTTP/1.1" not in got


def test_over_tls_a_body_over_the_limit_is_413_and_nothing_is_stored(tls_bridge):
    bridge, _, cert = tls_bridge(max_body_bytes=2048)
    body = json.loads(sample("webhook_firing_api_v2.json"))
    body["pad"] = "\u00e9" * 4096  # unicode, over the limit once encoded
    data = json.dumps(body, ensure_ascii=False).encode()
    headers = {"Authorization": f"Bearer {WEBHOOK_TOKEN}", "Content-Type": "application/json"}
    for sent in (data, iter([data[:1000], data[1000:]])):  # Content-Length, then chunked
        refused = requests.post(bridge.url + "/v1/alerts/alertmanager", headers=headers, data=sent,
                                verify=cert, timeout=30)
        assert refused.status_code == 413 and "server.max_body_bytes (2048)" in refused.json()["message"]
    assert bridge.request("GET", "/v1/signals", verify=cert).json()["signals"] == []
