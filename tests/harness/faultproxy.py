"""An HTTP proxy in front of a real service that injects faults: 5xx answers, delays,
and requests held until the test releases them. It records what it forwarded."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests


@dataclass
class Fault:
    method: str
    path: re.Pattern
    status: int | None = None  # answer this instead of forwarding
    delay: float = 0.0  # forward after this long
    hold: threading.Event | None = None  # forward once set (or drop, see `drop`)
    drop: bool = False  # with hold: never forward, close the connection
    times: int | None = None  # how many requests it applies to; None = all
    held: list[str] = field(default_factory=list)
    body: bytes | None = None  # only requests whose body contains this


class FaultProxy:
    def __init__(self, upstream: str):
        self.upstream = upstream.rstrip("/")
        self.faults: list[Fault] = []
        self.forwarded: list[tuple[str, str, bytes]] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_):
                pass

            def _handle(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fault = proxy._fault_for(self.command, self.path, body)
                if fault and fault.status:
                    return self._reply(fault.status, b'{"computeFault": {"code": %d, "message": "injected"}}'
                                       % fault.status, {"Content-Type": "application/json"})
                if fault and fault.delay:
                    threading.Event().wait(fault.delay)
                if fault and fault.hold:
                    fault.held.append(self.path)
                    fault.hold.wait(120)
                    if fault.drop:
                        self.close_connection = True
                        return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("content-length", "connection")}
                try:
                    answer = requests.request(self.command, proxy.upstream + self.path, data=body, headers=headers,
                                              timeout=60, allow_redirects=False)
                except requests.RequestException:
                    return self._reply(502, b"", {})
                with proxy.lock:
                    proxy.forwarded.append((self.command, self.path, body))
                passed = {k: v for k, v in answer.headers.items()
                          if k.lower() not in ("content-length", "connection", "transfer-encoding", "content-encoding")}
                self._reply(answer.status_code, answer.content, passed)

            def _reply(self, status, content, headers):
                try:
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(content)))
                    self.end_headers()
                    self.wfile.write(content)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client died (a SIGKILLed bridge): nothing to answer

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def add(self, method: str, path: str, **kwargs) -> Fault:
        fault = Fault(method, re.compile(path), **kwargs)
        with self.lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self.lock:
            for fault in self.faults:
                if fault.hold:
                    fault.hold.set()
            self.faults.clear()

    def _fault_for(self, method: str, path: str, body: bytes = b"") -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.method == method and fault.path.search(path) and fault.times != 0 and (
                        fault.body is None or fault.body in body):
                    if fault.times is not None:
                        fault.times -= 1
                    return fault
        return None

    def count(self, method: str, path: str) -> int:
        pattern = re.compile(path)
        with self.lock:
            return sum(1 for m, p, _ in self.forwarded if m == method and pattern.search(p))

    def close(self) -> None:
        self.clear()
        self.server.shutdown()
        self.server.server_close()
