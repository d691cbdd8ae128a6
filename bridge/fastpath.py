"""A plain webhook request, answered from the worker's buffered bytes without WSGI or Flask.

A webhook is the bridge's hot path: under gunicorn and Flask, building the WSGI environ,
werkzeug's request, routing and the response cost more CPU than the bridge's own work
(parse, rules, store). Only a plain request takes this path: HTTP/1.1 `POST /v1/alerts/<a
known source>`, a Content-Length body with nothing after it, each header field a token name
and a visible-ASCII value, no field twice, and no Expect, Upgrade or Transfer-Encoding field.
Anything else, malformed or merely unusual, goes the general way, where gunicorn's parser and
Flask judge it. What is answered is bridge/api/alerts.Webhooks.answer(), as the route does.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from types import SimpleNamespace

from gunicorn import SERVER
from gunicorn.util import http_date
from werkzeug.http import HTTP_STATUS_CODES

from bridge.api.alerts import Answer
from bridge.framing import RequestFraming
from bridge.sources import PARSERS

_REQUEST_LINE = re.compile(rb"POST (/v1/alerts/([a-z0-9]{1,32}))(?:\?([!-~]*))? HTTP/1\.1")
_FIELD = re.compile(rb"([!#$%&'*+.^`|~0-9A-Za-z-]+):[ \t]*((?:[!-~](?:[ \t!-~]*[!-~])?)?)[ \t]*")
_GENERAL = {"EXPECT", "UPGRADE", "TRANSFER-ENCODING", "HTTP2-SETTINGS"}  # left to gunicorn
_STATUS = {code: f"{code} {text.upper()}" for code, text in HTTP_STATUS_CODES.items()}  # as werkzeug sends it


@dataclass
class Plain:
    path: str
    query: str
    source: str
    headers: list[tuple[str, str]]  # (NAME, value), as gunicorn's parser gives them
    body: bytes

    def header(self, name: str, default: str = "") -> str:
        return next((value for key, value in self.headers if key == name), default)

    @property
    def uri(self) -> str:
        return self.path + (f"?{self.query}" if self.query else "")

    @property
    def close(self) -> bool:
        """Whether the client asked to close after this request (as gunicorn reads it)."""
        return self.header("CONNECTION").lower() == "close"


def plain_request(framing: RequestFraming, cfg) -> Plain | None:
    """The buffered request, if it is a plain webhook within gunicorn's limits; else None."""
    buf, head_end = framing.buf, framing.head_end
    if framing.chunked or len(buf) != head_end + framing.length:
        return None  # chunked, or more bytes behind it (pipelined)
    lines = bytes(buf[:head_end - 4]).split(b"\r\n")
    line = _REQUEST_LINE.fullmatch(lines[0])
    if (line is None or line.group(2).decode() not in PARSERS or len(lines) - 1 > cfg.limit_request_fields
            or (cfg.limit_request_line and len(lines[0]) > cfg.limit_request_line)):
        return None
    headers, names, field_size = [], set(), cfg.limit_request_field_size  # gunicorn's Config: read once
    for field in lines[1:]:
        match = _FIELD.fullmatch(field)
        if match is None or len(field) > field_size:
            return None
        name = match.group(1).decode().upper()
        if name in names or name in _GENERAL:
            return None
        names.add(name)
        headers.append((name, match.group(2).decode()))
    if "HOST" not in names:
        return None
    return Plain(line.group(1).decode(), (line.group(3) or b"").decode(), line.group(2).decode(), headers,
                 bytes(buf[head_end:]))


class _EverySecond:
    """A text of the current second, formatted once a second."""

    def __init__(self, make):
        self.make, self.second, self.text = make, None, ""

    def __call__(self) -> str:
        second = int(time.time())
        if second != self.second:
            self.second, self.text = second, self.make(second)
        return self.text


date_now = _EverySecond(http_date)  # gunicorn's Date field
_log_time = _EverySecond(lambda second: time.strftime("[%d/%b/%Y:%H:%M:%S %z]", time.localtime(second)))


def response(answer: Answer, keepalive: bool) -> bytes:
    """The answer as gunicorn sends Flask's response: the same status line, fields and order."""
    head = [f"HTTP/1.1 {_STATUS[answer.status]}", f"Server: {SERVER}", f"Date: {date_now()}",
            f"Connection: {'keep-alive' if keepalive else 'close'}", "Content-Type: application/json",
            f"Content-Length: {len(answer.body)}", *(f"{name}: {value}" for name, value in answer.headers.items())]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + answer.body


COMBINED = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'  # gunicorn's default access_log_format


def _quoted(value: str) -> str:
    return value.replace('"', '\\"')  # as gunicorn's SafeAtoms


def access_line(plain: Plain, answer: Answer, remote_addr: str) -> str | None:
    """gunicorn's access line in its default format, written directly: its atoms, built for any
    format, cost a dict of every header and environ entry per request. None when gunicorn would
    name a user (Basic credentials): the caller then goes gunicorn's way."""
    if plain.header("AUTHORIZATION").lower().startswith("basic"):
        return None
    return (f'{_quoted(remote_addr)} - - {_log_time()} "POST {_quoted(plain.uri)} HTTP/1.1" {answer.status} '
            f'{len(answer.body)} "{_quoted(plain.header("REFERER", "-"))}" "{_quoted(plain.header("USER-AGENT", "-"))}"')


def access_log_atoms(plain: Plain, answer: Answer, remote_addr: str):
    """What gunicorn's access log reads of the response, request and environ."""
    environ = {"REQUEST_METHOD": "POST", "RAW_URI": plain.uri, "SERVER_PROTOCOL": "HTTP/1.1", "PATH_INFO": plain.path,
               "QUERY_STRING": plain.query, "REMOTE_ADDR": remote_addr,
               **{f"HTTP_{name.replace('-', '_')}": value for name, value in plain.headers}}
    resp = SimpleNamespace(status=_STATUS[answer.status], sent=len(answer.body), headers=[
        ("Content-Type", "application/json"), ("Content-Length", str(len(answer.body))), *answer.headers.items()])
    return resp, plain.headers, environ
