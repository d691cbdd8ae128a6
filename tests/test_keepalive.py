"""A kept-alive connection past server.keepalive is closed, unless its next request has come."""

import selectors
import socket
import time
from collections import deque

from bridge.worker import BufferingThreadWorker


class Conn:
    def __init__(self, sock: socket.socket, timeout: float):
        self.sock, self.timeout, self.closed = sock, timeout, False

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
