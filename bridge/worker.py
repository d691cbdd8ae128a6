"""gunicorn's gthread worker, made to read each request whole before a thread takes it.

The stock worker hands a connection to a thread as soon as its first bytes arrive, and the
thread then blocks until the head and body are complete: a few clients that send half a
request hold every thread. Here the poller reads requests without blocking; a thread gets a
connection only once its whole request is buffered. A client gets server.header_timeout
seconds for the head and server.body_timeout for the body, then a 408; a body over
server.max_body_bytes gets a 413 whatever its transfer encoding, without being read.

A kept-alive connection is closed once idle for server.keepalive seconds, but never while a
request is waiting on it: a busy poller can reach the time-out after the next request came
and before it saw it, and closing then resets a valid request. For the same reason, what a
client sent before its header or body time-out is read before it is answered 408.

With server.tls the poller also does the TLS: each connection's handshake runs without
blocking, within server.header_timeout, and the request is read decrypted, so a client that
stalls its handshake holds no thread either.

A plain webhook request is answered straight from the buffered bytes (bridge/fastpath.py),
without WSGI or Flask: one with a small body by the poller itself, which hands its signals to
the receipts' group commit and sends the answer once they are committed (no thread waits for
the commit), a larger one by a thread. Every other request is served as gunicorn does.
"""

from __future__ import annotations

import errno
import itertools
import json
import select
import selectors
import socket
import ssl
import time
from concurrent.futures import Future
from datetime import datetime
from functools import partial

from gunicorn import http
from gunicorn import sock as gsock
from gunicorn.workers.gthread import STOP_KEEPALIVE_LINGER, ThreadWorker
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import InternalServerError

from bridge import fastpath
from bridge.api.alerts import Answer
from bridge.framing import MORE, TOO_LARGE, UNFRAMED, RequestFraming

_DRAIN_SECONDS = 2.0  # after a 413/408, how long to read and drop what the client still sends
# a plain webhook up to this size (head and body) is parsed by the poller itself (answer_here);
# a larger one by a thread, so that no parse holds the poller long
INLINE_BYTES = 65536


def error_response(status: int, reason: str, message: str) -> bytes:
    body = json.dumps({"error": reason, "message": message}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    return head.encode() + body


def _receive(sock) -> bytes | None:
    """What a readable non-blocking socket holds: b"" at its end or on an error, None if nothing yet.
    A TLS socket is read until its decrypted buffer is empty: the poller sees only the raw socket."""
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            data += chunk
            if not chunk or not isinstance(sock, ssl.SSLSocket) or not sock.pending():
                return data
    except (ssl.SSLWantReadError, ssl.SSLWantWriteError):  # a record not whole yet
        return data or None
    except ssl.SSLError:
        return b""
    except OSError as exc:
        return data or None if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK) else b""


def _waiting(sock, *, raw: bool = False) -> bool:
    """Whether a non-blocking socket has bytes (or its end) to read. TLS: decrypted bytes, or
    with `raw` any bytes at all (maybe a record not yet whole)."""
    if isinstance(sock, ssl.SSLSocket):
        return sock.pending() > 0 or (raw and bool(select.select([sock], [], [], 0)[0]))
    try:
        return sock.recv(1, socket.MSG_PEEK) is not None
    except OSError as exc:
        return exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK)


def _shaken(conn) -> bool | None:
    """Advance a TLS handshake without blocking: True once done, None while it waits for the
    client, False if it failed."""
    try:
        conn.sock.do_handshake()
    except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
        return None
    except OSError:  # ssl.SSLError included: not TLS, or a certificate refused
        return False
    conn.handshaking = False
    return True


class BufferingThreadWorker(ThreadWorker):
    tls: ssl.SSLContext | None = None  # with server.tls, made by init_process

    def init_process(self):
        server = self.app.bridge_config["server"]
        self.header_timeout = server["header_timeout"]
        self.body_timeout = server["body_timeout"]
        self.max_body = server["max_body_bytes"]
        self.max_head = self.cfg.limit_request_line + self.cfg.limit_request_fields * (
            self.cfg.limit_request_field_size + 2)
        self.keepalive_on = bool(self.cfg.keepalive)  # gunicorn's Config is slow to read per request
        self.combined_log = self.cfg.access_log_format == fastpath.COMBINED
        if self.cfg.is_ssl:
            self.tls = gsock.ssl_context(self.cfg)  # made once, not per connection
        self.reading: dict = {}  # conn -> deadline, for connections the poller is reading
        self.draining: dict = {}  # conn -> deadline, for refused connections being closed
        super().init_process()

    # ---- the poller reads -------------------------------------------------------------

    def enqueue_req(self, conn):
        """Every path to a thread (accept, keep-alive, pipelining) first buffers a whole request."""
        if getattr(conn, "buffered", False):
            super().enqueue_req(conn)
            return
        conn.framing = RequestFraming(self.max_head, self.max_body)
        if self.tls is not None and not isinstance(conn.sock, ssl.SSLSocket):  # a new connection
            conn.sock = self.tls.wrap_socket(conn.sock, server_side=True, do_handshake_on_connect=False,
                                             suppress_ragged_eofs=self.cfg.suppress_ragged_eofs)
            conn.handshaking = True
        if conn.parser is not None:  # bytes read ahead on a kept-alive connection
            conn.framing.feed(conn.parser.unreader.take_buffered())
        conn.sock.setblocking(False)
        conn.polled = False
        self.reading[conn] = time.monotonic() + self.header_timeout
        # a kept-alive connection the poller saw readable usually holds its whole request: read
        # it at once, without a round through the poller (register, wait, unregister)
        self.on_request_bytes(conn, conn.sock, received=b"" if conn.framing.state != MORE else None)
        if conn in self.reading:
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_request_bytes, conn))
            conn.polled = True

    def on_request_bytes(self, conn, _client, received: bytes | None = None):
        if getattr(conn, "handshaking", False):
            shaken = _shaken(conn)
            if shaken is False:
                self._stop_reading(conn)
                self._drop(conn)
            if not shaken:
                return
        if received is None:
            received = _receive(conn.sock)
            if received is None:
                return
            if not received:  # the client went away
                self._stop_reading(conn)
                self._drop(conn)
                return
        in_body = conn.framing.in_body
        state = conn.framing.feed(received)
        if state == MORE:
            if conn.framing.in_body and not in_body:
                self.reading[conn] = time.monotonic() + self.body_timeout
            return
        self._stop_reading(conn)
        if state == TOO_LARGE:
            self._refuse(conn, error_response(
                413, "Request Entity Too Large", f"body larger than server.max_body_bytes ({self.max_body})"))
            return
        # COMPLETE, or UNFRAMED: gunicorn's parser answers that with a 400 from the buffer
        conn.buffered = True
        if state != UNFRAMED and self.answer_here(conn):
            return
        conn.sock.setblocking(True)
        super().enqueue_req(conn)

    # ---- a plain webhook, answered by the poller ----------------------------------------

    def answer_here(self, conn) -> bool:
        """A plain webhook of a small body is answered without a thread: checked and parsed
        here, stored by the receipts' group commit, and answered here once that commits
        (webhook_stored). A thread would only wait for the commit, and waking it twice costs
        more than the work. True if taken."""
        if not isinstance(conn.client, tuple) or len(conn.framing.buf) > INLINE_BYTES:
            return False
        plain = fastpath.plain_request(conn.framing, self.cfg)
        if plain is None:
            return False
        conn.buffered = False
        start = datetime.now()
        webhooks = self.wsgi.extensions["bridge"]["webhooks"]
        try:
            checked = webhooks.check(plain.source, plain.header("AUTHORIZATION"), conn.client[0], lambda: plain.body)
        except Exception:
            checked = self._failed(webhooks, plain)
        if isinstance(checked, Answer):
            self.webhook_answered(conn, plain, checked, start)
            return True
        stored = webhooks.store.add_signals_later(checked, webhooks.clock())
        stored.add_done_callback(
            lambda done: self.method_queue.defer(self.webhook_stored, conn, plain, checked, done, start))
        return True

    def webhook_stored(self, conn, plain: fastpath.Plain, mapped: list, done: Future, start: datetime) -> None:
        webhooks = self.wsgi.extensions["bridge"]["webhooks"]
        exc = done.exception()
        try:
            if exc is None:
                answer = webhooks.stored(plain.source, mapped, done.result())
            elif isinstance(exc, SQLAlchemyError):
                answer = webhooks.not_stored(plain.source, mapped, exc)
            else:
                raise exc
        except Exception:
            answer = self._failed(webhooks, plain)
        self.webhook_answered(conn, plain, answer, start)

    def _failed(self, webhooks, plain: fastpath.Plain) -> Answer:
        """Answered 500 and logged, as Flask does."""
        self.wsgi.logger.exception("Exception on %s [POST]", plain.path)
        return webhooks.error(500, InternalServerError.description)

    def webhook_answered(self, conn, plain: fastpath.Plain, answer: Answer, start: datetime) -> None:
        """Send the answer from the poller, then keep the connection as gunicorn's
        finish_request does. What the socket does not take at once is sent by a thread."""
        keepalive = self._count_request(plain)
        response = fastpath.response(answer, keepalive)
        try:
            sent = conn.sock.send(response)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            sent = 0  # TLS could not write now: a thread sends it
        except OSError as exc:
            self.log.debug("Ignoring socket error after a webhook: %s", exc)
            sent, keepalive = len(response), False
        self._access(conn, plain, answer, start)
        if sent < len(response):
            conn.buffered = True  # handle() sends the rest
            conn.rest, conn.keep = response[sent:], keepalive
            conn.sock.setblocking(True)
            super().enqueue_req(conn)
        elif keepalive:
            conn.set_timeout()
            if not self.alive:
                conn.timeout = min(conn.timeout, time.monotonic() + STOP_KEEPALIVE_LINGER)
            self.keepalived_conns.append(conn)
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_client_socket_readable, conn))
        else:
            self.nr_conns -= 1
            conn.close()

    def handle(self, conn):
        """In a thread: the rest of an answer the poller began to send; a plain webhook answered
        at once; else give the parser the buffered request, then serve it as gunicorn does."""
        rest = getattr(conn, "rest", None)
        if rest is not None:
            conn.rest = None
            conn.buffered = False
            self._init(conn)  # blocking, and the parser gunicorn's finish_request reads
            try:
                conn.sock.sendall(rest)
            except OSError as exc:
                self.log.debug("Ignoring socket error after a webhook: %s", exc)
                return False
            return conn.keep
        plain = fastpath.plain_request(conn.framing, self.cfg) if isinstance(conn.client, tuple) else None
        if plain is not None:
            conn.buffered = False
            return self.answer_webhook(conn, plain)
        self._init(conn)
        conn.parser.unreader.unread(bytes(conn.framing.buf))
        conn.buffered = False
        return super().handle(conn)

    def _init(self, conn) -> None:
        """gunicorn's TConn.init, for a TLS connection too: the poller has wrapped it already."""
        if conn.parser is None and self.tls is not None:
            conn.parser = http.get_parser(self.cfg, conn.sock, conn.client)
        conn.init()

    def answer_webhook(self, conn, plain: fastpath.Plain) -> bool:
        """What gunicorn's handle_request does around the app (request count, keep-alive, access
        log), around Webhooks.answer(). True to keep the connection."""
        self._init(conn)  # gunicorn's finish_request reads the parser's buffer (empty here)
        start = datetime.now()
        keepalive = self._count_request(plain)
        webhooks = self.wsgi.extensions["bridge"]["webhooks"]
        try:
            answer = webhooks.answer(plain.source, plain.header("AUTHORIZATION"), conn.client[0], lambda: plain.body)
        except Exception:
            answer = self._failed(webhooks, plain)
        try:
            conn.sock.sendall(fastpath.response(answer, keepalive))
        except OSError as exc:
            self.log.debug("Ignoring socket error after a webhook: %s", exc)
            return False
        finally:
            self._access(conn, plain, answer, start)
        return keepalive

    def _access(self, conn, plain: fastpath.Plain, answer: Answer, start: datetime) -> None:
        """gunicorn's access line for a webhook answered outside WSGI."""
        if not self.log.access_log_enabled:
            return
        line = fastpath.access_line(plain, answer, conn.client[0]) if self.combined_log else None
        if line is None:
            self.log.access(*fastpath.access_log_atoms(plain, answer, conn.client[0]), datetime.now() - start)
        else:
            self.log.access_log.info(line)

    def _count_request(self, plain: fastpath.Plain) -> bool:
        """What gunicorn's handle_request counts for a request; whether to keep the connection."""
        self.nr += 1
        if self.nr >= self.max_requests and self.alive:
            self.log.info("Autorestarting worker after current request.")
            self.alive = False
        return (not plain.close and self.alive and self.keepalive_on
                and len(self.keepalived_conns) < self.max_keepalived)

    def murder_keepalived(self, force=False):
        """Idle connections past server.keepalive are closed; one whose client has sent its next
        request meanwhile is served instead."""
        if not force:
            now = time.monotonic()
            expired = list(itertools.takewhile(lambda c: c.timeout <= now, self.keepalived_conns))
            for conn in expired:
                if _waiting(conn.sock, raw=True):
                    self.on_client_socket_readable(conn, conn.sock)
        super().murder_keepalived(force)

    def _stop_reading(self, conn):
        del self.reading[conn]
        if conn.polled:
            self.poller.unregister(conn.sock)
            conn.polled = False

    def murder_pending(self):
        super().murder_pending()
        now = time.monotonic()
        for conn, deadline in list(self.reading.items()):
            if deadline <= now:
                # what arrived before the time-out but was not read yet (a busy poller) counts
                while conn in self.reading and _waiting(conn.sock):
                    self.on_request_bytes(conn, conn.sock)
                if conn not in self.reading:
                    continue
                self._stop_reading(conn)
                what, key = ("body", "body_timeout") if conn.framing.in_body else ("head", "header_timeout")
                self._refuse(conn, error_response(
                    408, "Request Timeout", f"request {what} not received within server.{key}"))
        for conn, deadline in list(self.draining.items()):
            if deadline <= now:
                self._stop_draining(conn)

    # ---- refusing without a thread -----------------------------------------------------

    def _refuse(self, conn, response: bytes):
        """Send a short error, then read and drop the rest for a moment so it is not lost to a reset."""
        try:
            conn.sock.send(response)
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._drop(conn)
            return
        self.draining[conn] = time.monotonic() + _DRAIN_SECONDS
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._drain, conn))

    def _drain(self, conn, _client):
        if _receive(conn.sock) == b"":
            self._stop_draining(conn)

    def _stop_draining(self, conn):
        del self.draining[conn]
        self.poller.unregister(conn.sock)
        self._drop(conn)

    def _drop(self, conn):
        self.nr_conns -= 1
        conn.close()
