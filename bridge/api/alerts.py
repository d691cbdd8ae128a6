"""POST /v1/alerts/<source>: a monitoring system's webhook.

Webhooks.answer() is the whole of it without HTTP I/O: rate limit, source, token, body limit,
parse, rules, store, and the precise 4xx. The Flask route below is one thin adapter; the
serving worker's fast path (bridge/worker.py), which answers it without WSGI or Flask, is the
other: what a webhook costs is then mostly the bridge's own work.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass, field
from typing import Callable

from flask import Blueprint, Response, current_app, request
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.http import HTTP_STATUS_CODES

from bridge import metrics, rules, sources
from bridge.api import ratelimit
from bridge.api.context import bearer_token

log = logging.getLogger(__name__)
bp = Blueprint("alerts", __name__)


@dataclass
class Answer:
    status: int
    body: bytes  # JSON, as Flask's jsonify writes it
    headers: dict[str, str] = field(default_factory=dict)  # beside Content-Type and Content-Length


class Webhooks:
    """Every webhook of one process: `dumps` is the app's JSON (Flask's app.json.dumps)."""

    def __init__(self, config, store, engine, clock, dumps: Callable[..., str]):
        self.config, self.store, self.engine, self.clock, self.dumps = config, store, engine, clock, dumps
        self.rates = config["server"]["rate_limit"]
        # one count per token and source, across the webhook routes
        self.windows = ratelimit.MovingWindows(self.rates["webhook"]) if self.rates["enabled"] else None

    def json(self, status: int, body, **headers: str) -> Answer:
        return Answer(status, (self.dumps(body, separators=(",", ":")) + "\n").encode(), headers)

    def error(self, status: int, message: str, **headers: str) -> Answer:
        return self.json(status, {"error": HTTP_STATUS_CODES[status], "message": message}, **headers)

    def answer(self, source: str, authorization: str, remote_addr: str | None,
               read_body: Callable[[], bytes]) -> Answer:
        """The answer to a POST to /v1/alerts/<source>. read_body() gives the body, or raises
        werkzeug's 413 above server.max_body_bytes; it is called only once the caller is known."""
        checked = self.check(source, authorization, remote_addr, read_body)
        if isinstance(checked, Answer):
            return checked
        try:
            stored = self.store.add_signals(checked, self.clock())
        except SQLAlchemyError as exc:
            return self.not_stored(source, checked, exc)
        return self.stored(source, checked, stored)

    def check(self, source: str, authorization: str, remote_addr: str | None,
              read_body: Callable[[], bytes]) -> Answer | list[tuple]:
        """Everything before the store: the answer (a 4xx), or the mapped signals to store."""
        token = bearer_token(authorization)
        if self.windows is not None:
            over = self.windows.hit(f"{ratelimit.caller(token, remote_addr)}:{source}")
            if over is not None:
                status, message, retry_after = ratelimit.shed("webhook", source, over, self.rates)
                return self.error(status, message, **{"Retry-After": str(retry_after)})
        if source not in sources.PARSERS:
            return self.error(404, f"unknown source {source!r}; known: {', '.join(sorted(sources.PARSERS))}")
        expected = self.config.webhook_tokens.get(source)
        if token is None:
            return self.error(401, "missing bearer token", **{"WWW-Authenticate": "Bearer"})
        if expected is None or not hmac.compare_digest(token.encode(), expected.encode()):
            return self.error(401, f"wrong token for source {source!r}", **{"WWW-Authenticate": "Bearer"})
        try:
            signals = sources.parse(source, read_body())
        except sources.PayloadError as exc:
            return self.error(400, str(exc))
        return [(s, rules.classify(s, self.config["rules"])) for s in signals]

    def not_stored(self, source: str, mapped: list[tuple], exc: SQLAlchemyError) -> Answer:
        """The store failed (logged with its traceback): every sender retries a 5xx."""
        log.error("cannot store %d signal(s) from %s", len(mapped), source, exc_info=exc)
        return self.error(503, "signals could not be stored; retry")

    def stored(self, source: str, mapped: list[tuple], stored: list[dict]) -> Answer:
        """The 202 once the signals are committed; the engine is woken for them."""
        for signal, _ in mapped:
            metrics.signal_received(source, signal.status)
        if self.engine is not None:
            self.engine.wake(None)
        return self.json(202, {"accepted": len(stored), "duplicates": sum(s["duplicate"] for s in stored),
                               "signals": stored})


@bp.post("/v1/alerts/<source>")
def receive(source: str):
    answer = current_app.extensions["bridge"]["webhooks"].answer(
        source, request.headers.get("Authorization", ""), request.remote_addr,
        lambda: request.get_data(cache=False))  # 413 above server.max_body_bytes
    response = Response(answer.body, status=answer.status, mimetype="application/json")
    response.headers.update(answer.headers)
    return response
