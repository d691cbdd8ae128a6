"""Liveness, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

from importlib import resources

import yaml
from flask import Blueprint, Response, current_app
from sqlalchemy.exc import SQLAlchemyError

from bridge import metrics as bridge_metrics
from bridge.api.context import inventory, store
from bridge.gating import ObserverCollector, observer_health
from bridge.store import pending_migrations

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return {"status": "ok"}


@bp.get("/readyz")
def readyz():
    checks: dict[str, str] = {}
    try:
        checks["database"] = "migrations pending" if pending_migrations(store().engine) else "ok"
    except SQLAlchemyError as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}"
    engine = current_app.extensions["bridge"]["engine"]
    if engine is not None:
        checks["engine"] = "ok" if engine.alive() else "stopped"
    ready = all(v == "ok" for v in checks.values())
    # the observers the gates trust: while one fails, fencing is held (alerts are still taken in)
    try:
        observers = observer_health(inventory(), engine.gating if engine is not None else None)
    except SQLAlchemyError:  # the database is down: already not ready, and said so in checks
        observers = {}
    return ({"status": "ready" if ready else "not ready", "checks": checks, "observers": observers},
            200 if ready else 503)


@bp.get("/metrics")
def metrics():
    engine = current_app.extensions["bridge"]["engine"]
    observers = ObserverCollector(inventory(), engine.gating if engine is not None else None)
    body, content_type = bridge_metrics.exposition(store(), observers)
    return Response(body, content_type=content_type)


def openapi_document() -> dict:
    return yaml.safe_load(resources.files("bridge").joinpath("api/openapi.yaml").read_text())


@bp.get("/v1/openapi.json")
def openapi():
    return openapi_document()
