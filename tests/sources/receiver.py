"""A stand-in bridge for the shipped sender scripts, on 127.0.0.1."""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """A stand-in bridge that answers the statuses it is given, in order, then 202. A status
    may come with headers, as (status, {name: value})."""

    def __init__(self, statuses=(), source="nagios"):
        self.statuses, self.requests, self.arrived = list(statuses), [], []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                outer.arrived.append(time.monotonic())
                outer.requests.append((dict(self.headers), self.rfile.read(int(self.headers["Content-Length"]))))
                status, headers = outer.answer()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(b'{"message": "m"}')

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1/alerts/{source}"

    def answer(self):
        status = self.statuses.pop(0) if self.statuses else 202
        return status if isinstance(status, tuple) else (status, {})

    def close(self):
        self.server.shutdown()
