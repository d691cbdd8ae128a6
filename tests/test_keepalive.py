"""A kept-alive connection past server.keepalive is closed, unless its next request has come."""

import selectors
import socket
import time
from collections import deque

from bridge.worker import BufferingThreadWorker


class Conn:
    def __init__(self, sock: socket.socket, timeout: float):
        self.sock, self.timeout, self.closed = sock, timeout, False
        self.client = None  # a socket pair has no address: never the poller's own webhook path

    def close(self):
        self.closed = True
        self.sock.close()


def idle_worker(conns: list[Conn]) -> tuple[BufferingThreadWorker, list[Conn]]:
    """A worker holding `conns` as kept-alive connections; what it hands to a thread is listed."""
    worker = BufferingThreadWorker.__new__(BufferingThreadWorker)
    worker.poller = selectors.DefaultSelector()
    worker.keepalived_conns = deque(conns)
    worker.nr_conns = len(conns)
    served: list[Conn] = []
    worker.enqueue_req = served.append
    for conn in conns:
        conn.sock.setblocking(False)
        worker.poller.register(conn.sock, selectors.EVENT_READ)
    return worker, served


def test_an_expired_connection_whose_next_request_came_is_served_not_reset():
    (quiet, quiet_client), (busy, busy_client), (fresh, fresh_client) = (socket.socketpair() for _ in range(3))
    past, future = time.monotonic() - 1, time.monotonic() + 60
    conns = [Conn(quiet, past), Conn(busy, past), Conn(fresh, future)]
    busy_client.sendall(b"POST /v1/alerts/alertmanager HTTP/1.1\r\n")
    worker, served = idle_worker(conns)
    worker.murder_keepalived()
    assert served == [conns[1]]  # the request that came is read
    assert [c.closed for c in conns] == [True, False, False]  # only the idle one is closed
    assert list(worker.keepalived_conns) == [conns[2]] and worker.nr_conns == 2
    for s in (quiet_client, busy, busy_client, fresh, fresh_client):
        s.close()


class Pool:
    """A thread pool that only lists what it is given."""

    def __init__(self):
        self.given = []

    def submit(self, _fn, conn):
        self.given.append(conn)
        return self

    def add_done_callback(self, _callback):
        pass


def test_a_request_that_came_whole_before_its_time_out_is_served_not_answered_408():
    """A busy poller may reach the time-out before it has read what the client sent in time."""
    (late, late_client), (slow, slow_client) = socket.socketpair(), socket.socketpair()
    worker, _ = idle_worker([])
    worker.pending_conns, worker.reading, worker.draining = deque(), {}, {}
    worker.max_head, worker.max_body, worker.header_timeout = 65536, 65536, 10
    worker.tpool = Pool()
    conns = [Conn(late, 0), Conn(slow, 0)]
    for conn in conns:
        conn.parser = None
        BufferingThreadWorker.enqueue_req(worker, conn)  # the poller starts reading each
        worker.reading[conn] = time.monotonic() - 1  # and its time-out passes before it reads
    late_client.sendall(b"GET /healthz HTTP/1.1\r\nHost: bridge\r\n\r\n")
    slow_client.sendall(b"GET /healthz HTTP/1.1\r\nHost: br")
    worker.murder_pending()
    assert worker.tpool.given == [conns[0]]  # whole: to a thread
    slow_client.settimeout(5)
    assert slow_client.recv(100).startswith(b"HTTP/1.1 408 ")  # half a head: 408
    for s in (late, late_client, slow_client):
        s.close()


def test_a_request_already_there_goes_to_a_thread_without_the_poller_and_the_rest_wait_for_it():
    """A kept-alive connection the poller saw readable usually holds its whole request: it is
    read at once. Half a request waits on the poller for the rest; a client gone is dropped."""
    (whole, whole_client), (half, half_client), (gone, gone_client) = (socket.socketpair() for _ in range(3))
    worker, _ = idle_worker([])
    worker.pending_conns, worker.reading, worker.draining = deque(), {}, {}
    worker.max_head, worker.max_body, worker.header_timeout, worker.body_timeout = 65536, 65536, 10, 10
    worker.tpool = Pool()
    whole_client.sendall(b"GET /healthz HTTP/1.1\r\nHost: bridge\r\n\r\n")
    half_client.sendall(b"GET /healthz HTTP/1.1\r\nHost: br")
    gone_client.close()
    conns = [Conn(whole, 0), Conn(half, 0), Conn(gone, 0)]
    worker.nr_conns = len(conns)
    for conn in conns:
        conn.parser = None
        BufferingThreadWorker.enqueue_req(worker, conn)
    assert worker.tpool.given == [conns[0]] and conns[0].buffered
    assert [key.fileobj for key in worker.poller.get_map().values()] == [half]  # only the half one is polled
    assert list(worker.reading) == [conns[1]] and conns[2].closed and worker.nr_conns == 2
    half_client.sendall(b"idge\r\n\r\n")
    for key, _ in worker.poller.select(5):
        key.data(key.fileobj)
    assert worker.tpool.given == [conns[0], conns[1]] and not worker.reading and not worker.poller.get_map()
    for s in (whole, whole_client, half, half_client):
        s.close()
