"""Access to the app's config, store and engine, and to who is calling."""

from __future__ import annotations

import hmac
import json

from flask import abort, current_app, request

from bridge.sources.base import text_fault


def config():
    return current_app.extensions["bridge"]["config"]


def store():
    return current_app.extensions["bridge"]["store"]


def inventory():
    return current_app.extensions["bridge"]["inventory"]


def now():
    return current_app.extensions["bridge"]["clock"]()


def current_engine():
    """This worker's engine, or None (an API-only process)."""
    return current_app.extensions["bridge"]["engine"]


def wake_engine(incident_id: int | None = None) -> None:
    engine = current_engine()
    if engine is not None:
        engine.wake(incident_id)


def bearer_token(header: str) -> str | None:
    """The token of an Authorization header's value, if it is a bearer token."""
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def bearer() -> str | None:
    return bearer_token(request.headers.get("Authorization", ""))


def require_admin() -> str:
    """The name of the admin token presented; 401 without a valid one."""
    token = bearer()
    if token is None:
        abort(401, "missing bearer token")
    for candidate, name in config().admin_tokens.items():
        if hmac.compare_digest(token.encode(), candidate.encode()):
            return name
    abort(401, "wrong admin token")


def json_body() -> dict:
    """The body as a JSON object: 415 if it is declared as something else, 400 if it is not one."""
    mimetype = request.mimetype
    if mimetype and mimetype != "application/json" and not mimetype.endswith("+json"):
        abort(415, f"Content-Type: must be application/json, not {mimetype}")
    try:
        body = json.loads(request.get_data())
    except (ValueError, RecursionError):  # not UTF-8 or not JSON, or nested beyond the parser
        abort(400, "body must be a JSON object")
    if not isinstance(body, dict):
        abort(400, "body must be a JSON object")
    return body


def stored_text(name: str, value: str) -> str:
    """`value` as taken from a body, 400 if no database can store it (a lone surrogate, a NUL)."""
    fault = text_fault(value)
    if fault:
        abort(400, f"{name}: {fault}")
    return value


def required_reason(body: dict) -> str:
    """The body's `reason`, stripped: 400 unless it is a string with a non-blank character."""
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        abort(400, "reason: required, a string that is not blank")
    return stored_text("reason", reason.strip())
