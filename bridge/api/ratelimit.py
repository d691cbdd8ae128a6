"""Per-token rate limits (flask-limiter): a caller over its rate is shed with Retry-After.

A webhook token is counted per source, an admin token across the operator API. Counters live
in each worker process's memory, so the whole server allows up to server.workers times the rate.
A shed webhook request gets its source's server.rate_limit.shed_status (the status that source
retries), an admin request 429. Shed requests are logged and counted on /metrics (hostdown_bridge_requests_shed_total).
"""

from __future__ import annotations

import hashlib
import logging
import math
import time

from flask import Flask, jsonify, request
from flask_limiter import Limiter, RateLimitExceeded

from bridge import metrics
from bridge.api.context import bearer

log = logging.getLogger(__name__)


def _caller() -> str:
    """The token's digest (never the token), or the address of a caller without one."""
    token = bearer()
    who = hashlib.sha256(token.encode()).hexdigest()[:32] if token else f"addr:{request.remote_addr}"
    return f"{who}:{_source()}"


def _source() -> str:
    return (request.view_args or {}).get("source", "")


def install(app: Flask, rates: dict, webhook_blueprints, admin_blueprints) -> None:
    # Retry-After is set below, on refusals only: flask-limiter's own header goes on every
    # answer and rounds down, to 0 in a window's last second
    limiter = Limiter(_caller, app=app, storage_uri="memory://", headers_enabled=False,
                      strategy="moving-window")
    webhooks = {blueprint.name for blueprint in webhook_blueprints}
    # shared: one count per caller across the routes, not one per route
    for blueprint in webhook_blueprints:
        limiter.shared_limit(rates["webhook"], scope="webhook")(blueprint)
    for blueprint in admin_blueprints:
        limiter.shared_limit(rates["admin"], scope="admin")(blueprint)

    @app.errorhandler(RateLimitExceeded)
    def _shed(exc: RateLimitExceeded):
        retry_after = max(1, math.ceil(limiter.current_limit.reset_at - time.time()))
        if request.blueprint in webhooks:
            # an unknown source is the caller's own text: never logged, never a label
            api, source = "webhook", _source() if _source() in rates["shed_status"] else "unknown"
            # Alertmanager drops an alert answered 429: its webhook retries only a 5xx
            # (notify/util.go, Retrier.Check, and the webhook sets no RetryCodes)
            status = rates["shed_status"].get(source, 429)
        else:
            api, source, status = "admin", "", 429
        metrics.SHED.labels(api, source).inc()
        log.warning("shed %s request%s over server.rate_limit (%s): %d, retry after %d s", api,
                    f" from {source}" if source else "", exc.description, status, retry_after)
        response = jsonify(error="Service Unavailable" if status == 503 else "Too Many Requests",
                           message=f"rate limit exceeded ({exc.description}); retry after {retry_after} s")
        response.status_code = status
        response.headers["Retry-After"] = str(retry_after)
        return response
