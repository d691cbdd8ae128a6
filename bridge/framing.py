"""Where an HTTP/1.1 request ends, found incrementally from the bytes received so far.

Only framing: the head's end, then Content-Length or chunked sizes. gunicorn's parser still
validates the request; anything this cannot frame is handed to it whole, to be answered 400.
"""

from __future__ import annotations

import re

MORE = "more"  # the request is not complete yet
COMPLETE = "complete"  # the whole request is buffered
TOO_LARGE = "too large"  # the body is over the limit
UNFRAMED = "unframed"  # malformed framing: let gunicorn's parser answer it

_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")
_DIGITS = re.compile(rb"[0-9]+")  # any length: a huge one is over the limit (413), not unframed
_MAX_CHUNK_LINE = 4096


class RequestFraming:
    """Feed it the bytes of one connection; it says when a whole request has arrived."""

    def __init__(self, max_head: int, max_body: int):
        self.max_head = max_head
        self.max_body = max_body
        self.buf = bytearray()
        self.head_end: int | None = None
        self.state = MORE
        self._length: int | None = None  # body length with Content-Length
        self._chunked = False
        self._pos = 0  # next unparsed chunk line, when chunked
        self._body = 0  # chunk bytes so far

    @property
    def chunked(self) -> bool:
        return self._chunked

    @property
    def length(self) -> int | None:
        """The body's Content-Length (None when chunked or while the head is incomplete)."""
        return self._length

    @property
    def in_body(self) -> bool:
        return self.head_end is not None

    def feed(self, data: bytes) -> str:
        self.buf += data
        if self.state == MORE:
            self.state = self._scan()
        return self.state

    def _scan(self) -> str:
        if self.head_end is None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return UNFRAMED if len(self.buf) > self.max_head else MORE
            self.head_end = self._pos = end + 4
            framing = self._read_head(bytes(self.buf[:end]))
            if framing != MORE:
                return framing
        if self._chunked:
            return self._scan_chunks()
        return COMPLETE if len(self.buf) >= self.head_end + self._length else MORE

    def _read_head(self, head: bytes) -> str:
        lengths, codings = [], []
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                lengths.append(value.strip())
            elif name == b"transfer-encoding":
                codings += [c.strip().lower() for c in value.split(b",")]
        if codings:
            if lengths or codings[-1] != b"chunked":
                return UNFRAMED
            self._chunked = True
            return MORE
        if len(lengths) > 1 or (lengths and not _DIGITS.fullmatch(lengths[0])):
            return UNFRAMED
        self._length = int(lengths[0]) if lengths else 0
        return TOO_LARGE if self._length > self.max_body else MORE

    def _scan_chunks(self) -> str:
        while True:
            eol = self.buf.find(b"\r\n", self._pos)
            if eol < 0:
                return UNFRAMED if len(self.buf) - self._pos > _MAX_CHUNK_LINE else MORE
            size_text = bytes(self.buf[self._pos:eol]).split(b";", 1)[0].strip()
            if not _HEX.fullmatch(size_text):
                return UNFRAMED
            size = int(size_text, 16)
            if size == 0:  # then optional trailer fields and an empty line
                if self.buf[eol + 2:eol + 4] == b"\r\n":
                    return COMPLETE
                end = self.buf.find(b"\r\n\r\n", eol + 2)
                if end >= 0:
                    return COMPLETE
                return UNFRAMED if len(self.buf) - eol > self.max_head else MORE
            self._body += size
            if self._body > self.max_body:
                return TOO_LARGE
            data_end = eol + 2 + size
            if len(self.buf) < data_end + 2:
                self._body -= size  # counted again when the chunk is complete
                return MORE
            if self.buf[data_end:data_end + 2] != b"\r\n":
                return UNFRAMED
            self._pos = data_end + 2
