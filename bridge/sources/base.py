"""What every source parser shares: its error type, JSON decoding, schema errors that name the field."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import jsonschema


class PayloadError(ValueError):
    """The body is not what this source sends; the message says where and why."""


def load_json(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"body is not UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise PayloadError(f"body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None


def where(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def validate(document: Any, validator: jsonschema.protocols.Validator) -> None:
    error = jsonschema.exceptions.best_match(validator.iter_errors(document))
    if error is not None:
        raise PayloadError(f"{where(error.absolute_path)}: {error.message}")


def parse_time(value: str | None) -> datetime | None:
    """RFC 3339 as Alertmanager writes it; Go's zero time means 'not set'."""
    if not value or value.startswith("0001-01-01"):
        return None
    text = value.replace("Z", "+00:00")
    if "." in text:  # Go writes up to 9 fraction digits; Python takes 6
        head, _, rest = text.partition(".")
        digits = "".join(c for c in rest if c.isdigit())
        text = f"{head}.{digits[:6].ljust(6, '0')}{rest[len(digits):]}"
    stamp = datetime.fromisoformat(text)
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)
