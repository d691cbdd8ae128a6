"""POST /v1/alerts/<source>: a monitoring system's webhook."""

from __future__ import annotations

import logging

from flask import Blueprint, abort, request
from sqlalchemy.exc import SQLAlchemyError

from bridge import metrics, rules, sources
from bridge.api.context import config, now, require_webhook_token, store, wake_engine

log = logging.getLogger(__name__)
bp = Blueprint("alerts", __name__)


@bp.post("/v1/alerts/<source>")
def receive(source: str):
    if source not in sources.PARSERS:
        abort(404, f"unknown source {source!r}; known: {', '.join(sorted(sources.PARSERS))}")
    require_webhook_token(source)
    body = request.get_data(cache=False)  # 413 above server.max_body_bytes
    try:
        signals = sources.parse(source, body)
    except sources.PayloadError as exc:
        abort(400, str(exc))
    mapped = [(s, rules.classify(s, config()["rules"])) for s in signals]
    try:
        stored = store().add_signals(mapped, now())
    except SQLAlchemyError:
        log.exception("cannot store %d signal(s) from %s", len(mapped), source)
        abort(503, "signals could not be stored; retry")  # every sender retries a 5xx
    for signal in signals:
        metrics.signal_received(source, signal.status)
    wake_engine()
    return {"accepted": len(stored), "duplicates": sum(s["duplicate"] for s in stored), "signals": stored}, 202
