"""Per-token rate limits: a caller over its rate is shed with Retry-After.

A webhook token is counted per source, an admin token across the operator API. Counters live
in each worker process's memory, so the whole server allows up to server.workers times the rate.
A shed webhook request gets its source's server.rate_limit.shed_status (the status that source
retries), an admin request 429. Shed requests are logged and counted on /metrics
(hostdown_bridge_requests_shed_total).

Each limit is a moving window (at most COUNT requests in any PERIOD), kept as the times of a
caller's last COUNT requests: a check costs O(1) and starts no thread. (flask-limiter's memory
storage started a timer thread every 10 ms and inserted at the head of a list: 2-3 ms a request,
more than the rest of a webhook together.)
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections import deque
from typing import Callable

import limits
from flask import Flask, jsonify, request

from bridge import metrics
from bridge.api.context import bearer

log = logging.getLogger(__name__)

_SWEEP_SECONDS = 60.0  # how often callers idle for a whole window are forgotten


class MovingWindows:
    """The rates `text` names ("50/second;1000/minute"), each a moving window per caller."""

    def __init__(self, text: str, clock: Callable[[], float] = time.monotonic):
        self.items = [(item, float(item.get_expiry())) for item in limits.parse_many(text)]
        self.longest = max(period for _, period in self.items)
        self.clock = clock
        self._times: dict[str, list[deque]] = {}  # caller -> per item, its requests' times
        self._lock = threading.Lock()
        self._swept = clock()

    def hit(self, caller: str) -> tuple[limits.RateLimitItem, float] | None:
        """Count a request; None if every window has room, else the limit it exceeds and the
        seconds until that window has room again (the request is then not counted)."""
        with self._lock:
            now = self.clock()
            if now - self._swept > _SWEEP_SECONDS:
                self._sweep(now)
            windows = self._times.get(caller)
            if windows is None:
                windows = self._times[caller] = [deque(maxlen=item.amount) for item, _ in self.items]
            for (item, period), times in zip(self.items, windows):
                if len(times) == item.amount and now - times[0] < period:
                    return item, times[0] + period - now
            for times in windows:
                times.append(now)  # the oldest falls out: maxlen
            return None

    def _sweep(self, now: float) -> None:
        self._swept = now
        for caller in [c for c, windows in self._times.items()
                       if all(not times or now - times[-1] >= self.longest for times in windows)]:
            del self._times[caller]


def caller(token: str | None, remote_addr: str | None) -> str:
    """The token's digest (never the token), or the address of a caller without one."""
    return hashlib.sha256(token.encode()).hexdigest()[:32] if token else f"addr:{remote_addr}"


def shed(api: str, source: str, over: tuple[limits.RateLimitItem, float], rates: dict) -> tuple[int, str, int]:
    """A request over its rate: counted and logged; its status, message and Retry-After seconds.
    `source` is the webhook's source ("" for the admin API)."""
    item, wait = over
    retry_after = max(1, math.ceil(wait))
    if api == "webhook":
        # an unknown source is the caller's own text: never logged, never a label
        source = source if source in rates["shed_status"] else "unknown"
        # Alertmanager drops an alert answered 429: its webhook retries only a 5xx
        # (notify/util.go, Retrier.Check, and the webhook sets no RetryCodes)
        status = rates["shed_status"].get(source, 429)
    else:
        source, status = "", 429
    metrics.SHED.labels(api, source).inc()
    log.warning("shed %s request%s over server.rate_limit (%s): %d, retry after %d s", api,
                f" from {source}" if source else "", item, status, retry_after)
    return status, f"rate limit exceeded ({item}); retry after {retry_after} s", retry_after


def install(app: Flask, rates: dict, admin_blueprints) -> None:
    """The admin API's limit (the webhook's is part of bridge/api/alerts.Webhooks)."""
    admins = {blueprint.name for blueprint in admin_blueprints}
    admin_windows = MovingWindows(rates["admin"])

    @app.before_request
    def _limit():
        if request.blueprint not in admins:
            return None
        over = admin_windows.hit(caller(bearer(), request.remote_addr))  # one count per token across the operator API
        if over is None:
            return None
        status, message, retry_after = shed("admin", "", over, rates)
        response = jsonify(error="Too Many Requests", message=message)
        response.status_code = status
        response.headers["Retry-After"] = str(retry_after)
        return response
