"""What every source parser shares: its error type, JSON decoding, schema errors that name the
field, and the value checks (times, epoch seconds, numbers) that leave only storable signals.

Every check is linear in its input: no pattern here can backtrack (fixed-width fields, one
unbounded run at most, followed by a character it cannot contain).
"""

from __future__ import annotations

import json
import re
import reprlib
from datetime import datetime, timedelta, timezone
from typing import Any

import jsonschema
import jsonschema_rs

# deep enough for every sender's body; the validators and error messages recurse over it
MAX_DEPTH = 32
# RFC 3339 as Alertmanager writes it (Go's time.RFC3339Nano); ASCII digits only
RFC3339 = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
                     r"(?:Z|([+-])([0-9]{2}):([0-9]{2}))")
GO_ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time: 'not set'
# the dedup key holds the fingerprint and is a unique index: PostgreSQL's btree takes no
# row above 2,704 bytes, and the rest of the key is under 100
MAX_FINGERPRINT_BYTES = 2048

_short = reprlib.Repr()
_short.maxstring = _short.maxother = 60


class PayloadError(ValueError):
    """The body is not what this source sends; the message says where and why."""


def shown(value: Any) -> str:
    """A value for an error message: its repr, cut short (a message never echoes a megabyte)."""
    return _short.repr(value)


def where(path) -> str:
    out = ""
    for part in path:
        name = str(part) if len(str(part)) <= 60 else f"{str(part)[:57]}..."  # a key can be long too
        out += f"[{part}]" if isinstance(part, int) else (f".{name}" if out else name)
    return out or "body"


def text_fault(text: str) -> str | None:
    if "\x00" in text:
        return "contains a NUL character, which no database stores"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            return f"contains a lone surrogate ({text[exc.start]!r}), which is not a character"
    return None


def _check_storable(document: Any, path: tuple, escaped: bool) -> None:
    """Nesting stays shallow and, when the text had \\u escapes (the only way JSON carries a
    lone surrogate or a NUL), every string and key encodes as UTF-8 without NUL. Iterative."""
    stack = [(document, path)]
    while stack:
        node, at = stack.pop()
        if len(at) - len(path) > MAX_DEPTH:
            raise PayloadError(f"{where(at)}: nested deeper than {MAX_DEPTH} levels")
        if not isinstance(node, (dict, list)):
            fault = escaped and isinstance(node, str) and text_fault(node)
            if fault:
                raise PayloadError(f"{where(at)}: {fault}")
            continue
        for key, value in node.items() if isinstance(node, dict) else enumerate(node):
            fault = escaped and isinstance(key, str) and text_fault(key)
            if fault:
                raise PayloadError(f"{where(at)}: the key {shown(key)} {fault}")
            if escaped or isinstance(value, (dict, list)):
                stack.append((value, (*at, key)))


def decode_json(text: str, path: tuple = (), what: str = "JSON") -> Any:
    """JSON text to a document whose every string can be stored; errors name the field."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PayloadError(f"{where(path)} is not {what}: {exc.msg} at line {exc.lineno} column {exc.colno}") \
            from None
    except RecursionError:
        raise PayloadError(f"{where(path)}: nested deeper than {MAX_DEPTH} levels") from None
    _check_storable(document, path, escaped="\\u" in text)
    return document


def load_json(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"body is not UTF-8: {exc.reason} at byte {exc.start}") from None
    return decode_json(text)


class Validator:
    """A JSON Schema (draft 2020-12), checked by jsonschema-rs in microseconds; only a document it
    refuses goes through jsonschema, whose best match names the field (0.5 ms a body otherwise)."""

    def __init__(self, schema: dict):
        self.fast = jsonschema_rs.Draft202012Validator(schema)
        self.full = jsonschema.Draft202012Validator(schema)


def validate(document: Any, validator: Validator) -> None:
    if validator.fast.is_valid(document):
        return
    error = jsonschema.exceptions.best_match(validator.full.iter_errors(document))
    if error is not None:
        message = error.message.replace(repr(error.instance), shown(error.instance), 1)
        raise PayloadError(f"{where(error.absolute_path)}: {message}")


def instant(field: str, text: str, fields: tuple[int, ...], offset: timedelta = timedelta(0)) -> datetime:
    """An aware datetime from (year, month, day, hour, minute, second, microsecond) at a UTC
    offset, which must exist both there and in UTC (where it is stored)."""
    try:
        stamp = datetime(*fields, tzinfo=timezone(offset))
    except ValueError as exc:
        raise PayloadError(f"{field}: {shown(text)} is not a time: {exc}") from None
    try:
        stamp.astimezone(timezone.utc)
    except OverflowError:
        raise PayloadError(f"{field}: {shown(text)} is out of range once converted to UTC") from None
    return stamp


def parse_time(value: str | None, field: str) -> datetime | None:
    """RFC 3339 as Alertmanager writes it, at the sender's offset; Go's zero time means 'not set'."""
    if not value or value == GO_ZERO_TIME:
        return None
    found = RFC3339.fullmatch(value)
    if found is None:
        raise PayloadError(f"{field}: {shown(value)} is not an RFC 3339 time (YYYY-MM-DDTHH:MM:SS[.frac]Z|±HH:MM)")
    *clock, fraction, sign, off_hours, off_minutes = found.groups()
    micro = int((fraction or "")[:6].ljust(6, "0"))  # Go writes up to 9 fraction digits; Python keeps 6
    offset = timedelta(0)
    if sign:
        if int(off_hours) > 23 or int(off_minutes) > 59:
            raise PayloadError(f"{field}: {shown(value)} is not a time: UTC offset must be in -23:59..+23:59")
        offset = timedelta(hours=int(off_hours), minutes=int(off_minutes)) * (-1 if sign == "-" else 1)
    return instant(field, value, (*map(int, clock), micro), offset)


def fingerprint(value: str, field: str) -> str:
    """A fingerprint that fits the dedup key's index."""
    size = len(value.encode("utf-8"))
    if size > MAX_FINGERPRINT_BYTES:
        raise PayloadError(f"{field}: {shown(value)} is too long for a fingerprint "
                           f"({size} bytes in UTF-8, at most {MAX_FINGERPRINT_BYTES})")
    return value


def is_number(text: str) -> bool:
    """Decimal digits, one optional point and fraction: '3', '1795548045', '1795548045.25'."""
    whole, _, fraction = text.partition(".")
    return text.isascii() and whole.isdigit() and (fraction.isdigit() or not fraction)


def epoch(value: str, field: str) -> datetime | None:
    """Epoch seconds (is_number) as an aware UTC datetime; 0 means 'never'."""
    if not is_number(value):
        raise PayloadError(f"{field}: {shown(value)} is not a number (epoch seconds)")
    seconds = float(value)  # a megabyte of digits is inf, not a hang
    if seconds == 0:  # the object has not changed state since the monitor started
        return None
    try:
        return datetime.fromtimestamp(seconds, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise PayloadError(f"{field}: {shown(value)} is not a time (epoch seconds)") from None
