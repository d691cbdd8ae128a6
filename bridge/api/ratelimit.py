"""Per-token rate limits (flask-limiter): a caller over its rate gets 429 with Retry-After.

A webhook token is counted per source, an admin token across the operator API. Counters live
in each worker process's memory, so the whole server allows up to server.workers times the rate.
"""

from __future__ import annotations

import hashlib

from flask import Flask, request
from flask_limiter import Limiter

from bridge.api.context import bearer


def _caller() -> str:
    """The token's digest (never the token), or the address of a caller without one."""
    token = bearer()
    who = hashlib.sha256(token.encode()).hexdigest()[:32] if token else f"addr:{request.remote_addr}"
    return f"{who}:{(request.view_args or {}).get('source', '')}"


def install(app: Flask, rates: dict, webhook_blueprints, admin_blueprints) -> Limiter:
    limiter = Limiter(_caller, app=app, storage_uri="memory://", headers_enabled=True,
                      strategy="moving-window")
    for blueprint in webhook_blueprints:
        limiter.limit(rates["webhook"])(blueprint)
    for blueprint in admin_blueprints:
        limiter.limit(rates["admin"])(blueprint)
    return limiter
