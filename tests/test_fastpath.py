"""The webhook fast path: which requests take it, and that its answers are the general path's."""

import json
import re
import selectors
import socket
import threading
from collections import deque
from datetime import timedelta
from concurrent.futures import Future
from types import SimpleNamespace

import pytest
from gunicorn.config import Config
from gunicorn.glogging import Logger, SafeAtoms
from gunicorn.workers.gthread import TConn
from sqlalchemy.exc import OperationalError

from bridge.api.alerts import Answer
from bridge.fastpath import COMBINED, access_line, access_log_atoms, plain_request
from bridge.framing import COMPLETE, RequestFraming
from bridge.worker import BufferingThreadWorker
from tests.conftest import sample_json
from tests.harness.bridge_process import WEBHOOK_TOKEN
from tests.harness.procs import wait_until
from tests.test_keepalive import Pool

CFG = SimpleNamespace(limit_request_line=4094, limit_request_fields=100, limit_request_field_size=8190)
BODY = b'{"version": "4", "alerts": []}'


def request(head: str = "POST /v1/alerts/alertmanager HTTP/1.1", fields: tuple = (), body: bytes = BODY,
            length: bool = True) -> bytes:
    lines = [head, "Host: bridge", f"Authorization: Bearer {WEBHOOK_TOKEN}", *fields]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunked(head: str = "POST /v1/alerts/alertmanager HTTP/1.1", fields: tuple = (), body: bytes = BODY) -> bytes:
    return request(head, (*fields, "Transfer-Encoding: chunked"), b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body),
                   length=False)


def framed(data: bytes) -> RequestFraming:
    framing = RequestFraming(100_000, 1_000_000)
    assert framing.feed(data) == COMPLETE
    return framing


def test_a_plain_webhook_takes_it():
    plain = plain_request(framed(request(head="POST /v1/alerts/zabbix?a=1 HTTP/1.1", fields=("Connection: close",))),
                          CFG)
    assert (plain.path, plain.query, plain.source, plain.body, plain.close) == (
        "/v1/alerts/zabbix", "a=1", "zabbix", BODY, True)
    assert plain.header("AUTHORIZATION") == f"Bearer {WEBHOOK_TOKEN}"


@pytest.mark.parametrize("data", [
    chunked(),
    request() + b"GET /healthz HTTP/1.1\r\nHost: b\r\n\r\n",  # pipelined
    request(head="POST /v1/alerts/alertmanager HTTP/1.0"),
    request(head="post /v1/alerts/alertmanager HTTP/1.1"),
    request(head="PUT /v1/alerts/alertmanager HTTP/1.1"),
    request(head="POST /v1/alerts/alert%6Danager HTTP/1.1"),
    request(head="POST /v1/alerts/alertmanager/ HTTP/1.1"),
    request(head="POST /v1/alerts/unknown HTTP/1.1"),
    request(head="POST /v1/alerts/alertmanager?a b HTTP/1.1"),
    request(fields=("Expect: 100-continue",)),
    request(fields=("Upgrade: h2c",)),
    request(fields=("Authorization: Bearer other",)),  # a field twice
    request(fields=("X_Under: 1",)),  # gunicorn drops it from the environ
    request(fields=("X-Folded: a", " b")),  # obsolete line folding
    request(fields=("X-Latin: caf\xe9",)),
    request(fields=("X-Space : a",)),
    request(fields=("X-Control: a\x01b",)),
    request(fields=("X-Long: " + "a" * 8200,)),
    (b"POST /v1/alerts/alertmanager HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"),  # no Host
], ids=lambda data: repr(data[:60]) if len(data) < 400 else "long field")
def test_anything_else_goes_the_general_way(data):
    assert plain_request(framed(data), CFG) is None


class Webhooks:
    """Records what the worker asks; answers 202."""

    def __init__(self):
        self.asked = []

    def answer(self, source, authorization, remote_addr, read_body):
        self.asked.append((source, authorization, remote_addr, read_body()))
        return Answer(202, b'{"accepted":0}\n', {"X-Seen": "1"})


class App:
    """The WSGI app: a plain webhook never reaches it."""

    def __init__(self):
        self.extensions = {"bridge": {"webhooks": Webhooks()}}

    def __call__(self, environ, start_response):
        raise AssertionError("the WSGI app was called")


def test_the_worker_answers_a_plain_webhook_without_the_wsgi_app():
    worker = BufferingThreadWorker.__new__(BufferingThreadWorker)
    worker.cfg, worker.wsgi, worker.log = Config(), App(), SimpleNamespace(access_log_enabled=False)
    worker.nr, worker.max_requests, worker.alive = 0, 1000, True
    worker.keepalived_conns, worker.max_keepalived, worker.keepalive_on = deque(), 10, True
    server, client = socket.socketpair()
    conn = TConn(worker.cfg, server, ("127.0.0.1", 5000), None)
    conn.framing, conn.buffered = framed(request()), True
    assert worker.handle(conn) is True  # kept alive
    assert worker.wsgi.extensions["bridge"]["webhooks"].asked == [
        ("alertmanager", f"Bearer {WEBHOOK_TOKEN}", "127.0.0.1", BODY)]
    client.settimeout(5)
    head, _, body = client.recv(65536).partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0] == b"HTTP/1.1 202 ACCEPTED" and b"X-Seen: 1" in head and body == b'{"accepted":0}\n'
    assert worker.nr == 1 and conn.buffered is False
    server.close(), client.close()


# ---- served: the fast path's answers are the general path's, byte for byte ---------------

def answer(sock: socket.socket, data: bytes) -> tuple[bytes, bytes]:
    """Status line and fields (Date blanked), and body, of the answer to one request."""
    sock.sendall(data)
    received = b""
    while b"\r\n\r\n" not in received:
        more = sock.recv(65536)
        assert more, f"closed without an answer: {received[:200]!r}"
        received += more
    head, _, body = received.partition(b"\r\n\r\n")
    length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
    while len(body) < length:
        body += sock.recv(65536)
    return re.sub(rb"Date: [^\r]+", b"Date: -", head), body


def exchange(port: int, data: bytes) -> tuple[bytes, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        return answer(sock, data)


def alerts(fingerprint: str, **change) -> bytes:
    body = sample_json("webhook_firing_api_v2.json")
    body["alerts"] = body["alerts"][:1]
    body["alerts"][0].update(fingerprint=fingerprint, **change)
    return json.dumps(body).encode()


def without_token(data: bytes, field: bytes = b"") -> bytes:
    return data.replace(f"Authorization: Bearer {WEBHOOK_TOKEN}\r\n".encode(), field)


@pytest.mark.process
def test_served_answers_are_the_same_on_either_path(bridge_process):
    bridge = bridge_process(server={"rate_limit": {"enabled": True, "webhook": "10/minute", "admin": "50/second"}},
                            workers=1)
    cases = [  # (fields, body, stored first): each sent plain (fast) and chunked (general)
        ((), alerts("a1"), True),  # 202, a duplicate on both paths
        ((), alerts("a2", startsAt="2024-13-45T99:99:99Z"), False),  # 400
        ((), b"[" * 100 + b"]" * 100, False),  # 400
        (("Connection: close",), alerts("a3"), True),  # 202, then closed
    ]
    for fields, body, stored_first in cases:
        if stored_first:
            assert exchange(bridge.port, chunked(fields=fields, body=body))[0].startswith(b"HTTP/1.1 202")
        fast, general = (exchange(bridge.port, request(fields=fields, body=body)),
                         exchange(bridge.port, chunked(fields=fields, body=body)))
        assert fast == general, (fields, body[:80])
    # no token, a wrong one: the same answer, WWW-Authenticate included
    for field in (b"", b"Authorization: Bearer wrong\r\n"):
        fast, general = (exchange(bridge.port, without_token(request(body=alerts("a4")), field)),
                         exchange(bridge.port, without_token(chunked(body=alerts("a4")), field)))
        assert fast == general and fast[0].startswith(b"HTTP/1.1 401") and b"WWW-Authenticate: Bearer" in fast[0]
    # the 11th with the token: shed alike (Alertmanager's shed status is 503), with Retry-After
    fast, general = (exchange(bridge.port, request(body=alerts("a5"))),
                     exchange(bridge.port, chunked(body=alerts("a5"))))
    assert fast == general and fast[0].startswith(b"HTTP/1.1 503 SERVICE UNAVAILABLE") and b"Retry-After:" in fast[0]
    # each has its access log line, the same on either path
    log = wait_until("the access log", lambda: (t := bridge.log_path.read_text()).count('" 503 ') == 2 and t)
    shed = [line.split("] ", 1)[1] for line in log.splitlines() if '" 503 ' in line]
    assert shed[0] == shed[1] and shed[0].startswith('"POST /v1/alerts/alertmanager HTTP/1.1" 503 ')


@pytest.mark.process
def test_a_kept_alive_connection_serves_fast_and_general_requests_in_turn(bridge_process):
    bridge = bridge_process(workers=1)
    with socket.create_connection(("127.0.0.1", bridge.port), timeout=30) as sock:
        for data, status in [(request(body=alerts("k1")), b"202"), (chunked(body=alerts("k2")), b"202"),
                             (request(body=alerts("k3")), b"202"), (b"GET /healthz HTTP/1.1\r\nHost: b\r\n\r\n", b"200"),
                             (request(body=alerts("k4")), b"202")]:
            head, _ = answer(sock, data)
            assert head.startswith(b"HTTP/1.1 " + status) and b"Connection: keep-alive" in head, head
    fingerprints = {s["fingerprint"] for s in bridge.request("GET", "/v1/signals").json()["signals"]}
    assert fingerprints == {"k1", "k2", "k3", "k4"}


@pytest.mark.process
def test_without_the_access_log_neither_path_writes_a_request_line(bridge_process):
    bridge = bridge_process(logging={"access": False}, workers=1)
    assert exchange(bridge.port, request(body=alerts("q1")))[0].startswith(b"HTTP/1.1 202")
    assert exchange(bridge.port, chunked(body=alerts("q2")))[0].startswith(b"HTTP/1.1 202")
    wait_until("the engine to take both in", lambda: "took in" in bridge.log_path.read_text())
    assert '"POST /v1/alerts/alertmanager' not in bridge.log_path.read_text()


@pytest.mark.process
def test_hostile_plain_webhooks_get_a_4xx_store_nothing_and_stall_no_worker(bridge_process):
    bridge = bridge_process(server={"max_body_bytes": 4096}, workers=1)
    surrogate = alerts("h1").replace(b'"h1"', b'"h\\ud800"')
    cases = [  # (request sent plain, the status it must get)
        (request(body=b"{" * 3000), b"400"),  # malformed JSON
        (request(body=b'{"alerts": "\xff\xfe"}'), b"400"),  # not UTF-8
        (request(body=surrogate), b"400"),  # a lone surrogate in a fingerprint
        (request(body=alerts("h2", startsAt="2024-02-30T00:00:00Z")), b"400"),  # an impossible date
        (request(body=alerts("h3", startsAt="9" * 400)), b"400"),  # a huge number for a date
        (request(body=alerts("h4", labels={"openstack_host": "x" * 5000})), b"413"),  # over max_body_bytes
        (request(fields=("Content-Length: 99999999999999999999",), body=b"", length=False), b"413"),
        (request(head="POST /v1/alerts/alertmanag\xe9r HTTP/1.1"), b"400"),  # not ASCII: no request line
    ]
    for data, status in cases:
        head, _ = exchange(bridge.port, data)
        assert head.startswith(b"HTTP/1.1 " + status), (data[:80], head)
    # 64 plain webhooks that never finish their body hold no thread: a good one is still answered
    slow = [socket.create_connection(("127.0.0.1", bridge.port), timeout=10) for _ in range(64)]
    try:
        for sock in slow:
            sock.sendall(request(body=alerts("slow"))[:-20])
        head, _ = exchange(bridge.port, request(body=alerts("h5")))
        assert head.startswith(b"HTTP/1.1 202"), head
    finally:
        for sock in slow:
            sock.close()
    stored = {s["fingerprint"] for s in bridge.request("GET", "/v1/signals").json()["signals"]}
    assert stored == {"h5"}  # nothing of the hostile ones, nor the unfinished ones


# ---- answered by the poller: no thread, and the 202 only once the commit is done ---------

class HeldStore:
    """The receipts' group commit, holding each group until the test commits or fails it."""

    def __init__(self):
        self.pending: list[Future] = []

    def add_signals_later(self, items, now):
        self.pending.append(Future())
        return self.pending[-1]


class StoringWebhooks:
    """Webhooks.check/stored/not_stored as the worker calls them; `size`: the 202 body's size."""

    def __init__(self, size: int = 16):
        self.store, self.clock, self.size = HeldStore(), lambda: None, size

    def check(self, source, authorization, remote_addr, read_body):
        return [(source, read_body())]

    def stored(self, source, mapped, stored):
        return Answer(202, json.dumps({"signals": stored, "pad": "x" * self.size}).encode() + b"\n")

    def not_stored(self, source, mapped, exc):
        return Answer(503, b'{"error":"retry"}\n')


class Now:
    """gunicorn's method queue, running each deferred call at once (the poller is the test)."""

    def defer(self, callback, *args):
        callback(*args)


def poller_worker(webhooks) -> BufferingThreadWorker:
    worker = BufferingThreadWorker.__new__(BufferingThreadWorker)
    worker.cfg, worker.wsgi, worker.log = Config(), App(), SimpleNamespace(access_log_enabled=False, debug=print)
    worker.wsgi.extensions["bridge"]["webhooks"] = webhooks
    worker.nr, worker.max_requests, worker.alive, worker.nr_conns = 0, 1000, True, 1
    worker.keepalived_conns, worker.max_keepalived, worker.keepalive_on = deque(), 10, True
    worker.poller, worker.method_queue, worker.tpool = selectors.DefaultSelector(), Now(), Pool()
    worker.reading, worker.draining = {}, {}
    worker.max_head, worker.max_body, worker.header_timeout, worker.body_timeout = 65536, 65536, 10, 10
    return worker


def test_the_poller_answers_a_small_webhook_once_its_commit_is_done_and_keeps_the_connection():
    webhooks = StoringWebhooks()
    worker = poller_worker(webhooks)
    server, client = socket.socketpair()
    conn = TConn(worker.cfg, server, ("127.0.0.1", 5000), None)
    client.sendall(request())
    worker.enqueue_req(conn)
    [commit] = webhooks.store.pending
    client.setblocking(False)
    with pytest.raises(BlockingIOError):
        client.recv(1)  # not a byte before the commit
    commit.set_result([{"id": 7}])
    client.settimeout(5)
    head, _, body = client.recv(65536).partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0] == b"HTTP/1.1 202 ACCEPTED" and json.loads(body)["signals"] == [{"id": 7}]
    assert worker.tpool.given == [] and list(worker.keepalived_conns) == [conn] and worker.nr == 1
    assert [key.fileobj for key in worker.poller.get_map().values()] == [server]  # waiting for the next one
    server.close(), client.close()


def test_a_failed_commit_is_answered_503_by_the_poller():
    webhooks = StoringWebhooks()
    worker = poller_worker(webhooks)
    server, client = socket.socketpair()
    client.sendall(request())
    worker.enqueue_req(TConn(worker.cfg, server, ("127.0.0.1", 5000), None))
    webhooks.store.pending[0].set_exception(OperationalError("INSERT", {}, Exception("disk I/O error")))
    client.settimeout(5)
    assert client.recv(65536).startswith(b"HTTP/1.1 503 SERVICE UNAVAILABLE\r\n")
    server.close(), client.close()


def test_what_the_socket_does_not_take_at_once_a_thread_sends():
    webhooks = StoringWebhooks(size=4_000_000)
    worker = poller_worker(webhooks)
    server, client = socket.socketpair()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    conn = TConn(worker.cfg, server, ("127.0.0.1", 5000), None)
    client.sendall(request())
    worker.enqueue_req(conn)
    webhooks.store.pending[0].set_result([])
    assert worker.tpool.given == [conn] and not worker.keepalived_conns  # the rest: a thread's
    received = []
    reader = threading.Thread(target=lambda: received.append(answer(client, b"")))
    reader.start()
    assert worker.handle(conn) is True
    reader.join(10)
    [(head, body)] = received
    assert head.startswith(b"HTTP/1.1 202 ACCEPTED") and len(json.loads(body)["pad"]) == 4_000_000
    server.close(), client.close()


def test_an_answer_is_dated_now_as_gunicorn_dates_it():
    from gunicorn.util import http_date

    from bridge.fastpath import response
    before = http_date()
    head = response(Answer(202, b"{}\n"), True).split(b"\r\n\r\n")[0].decode()
    after = http_date()
    assert re.search(r"\r\nDate: ([^\r]+)", head).group(1) in {before, after}


def test_a_client_gone_before_the_commit_is_dropped_and_holds_nothing():
    webhooks = StoringWebhooks()
    worker = poller_worker(webhooks)
    server, client = socket.socketpair()
    client.sendall(request())
    worker.enqueue_req(TConn(worker.cfg, server, ("127.0.0.1", 5000), None))
    client.close()  # gives up before its answer
    webhooks.store.pending[0].set_result([{"id": 7}])  # stored all the same: a retry is a duplicate
    assert worker.tpool.given == [] and not worker.keepalived_conns and worker.nr_conns == 0
    assert not worker.poller.get_map() and server.fileno() == -1  # closed, watched by nothing


@pytest.mark.parametrize("fields", [(), ("User-Agent: Alertmanager/0.27.0", "Referer: http://am:9093/"),
                                    ('User-Agent: say "hi" %s %(h)s',), ("Referer:",),
                                    # hostile: a field of 8,000 quotes (each escaped), backslashes
                                    ('User-Agent: ' + '"' * 8000, 'Referer: \\"\\')])
@pytest.mark.parametrize("head", ["POST /v1/alerts/alertmanager HTTP/1.1", 'POST /v1/alerts/zabbix?x="1"%25 HTTP/1.1'])
def test_the_access_line_written_directly_is_gunicorns_default_line(head, fields):
    assert Config().access_log_format == COMBINED
    plain = plain_request(framed(request(head=head, fields=fields)), CFG)
    answer = Answer(202, b'{"accepted": 1}', {})
    ours = access_line(plain, answer, "127.0.0.1")
    gunicorns = COMBINED % SafeAtoms(Logger(Config()).atoms(*access_log_atoms(plain, answer, "127.0.0.1"),
                                                               timedelta(0)))
    when = re.compile(r" (\[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\]) ")  # a second may turn between them
    assert when.sub(" [time] ", ours, 1) == when.sub(" [time] ", gunicorns, 1) and when.search(ours)
    # Basic credentials name a user: that line is left to gunicorn
    basic = plain_request(framed(request(head=head, fields=(*fields, "X-Other: 1"))), CFG)
    basic.headers = [(k, "Basic dXNlcjpwdw==" if k == "AUTHORIZATION" else v) for k, v in basic.headers]
    assert access_line(basic, answer, "127.0.0.1") is None
