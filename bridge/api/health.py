"""Liveness, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

from importlib import resources

import yaml
from flask import Blueprint, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy.exc import SQLAlchemyError

from bridge.api.context import store
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
    return {"status": "ready" if ready else "not ready", "checks": checks}, 200 if ready else 503


class _StoreCollector:
    """Counts read from the database, so every worker process reports the same numbers."""

    def __init__(self, the_store):
        self.store = the_store

    def collect(self):
        counts = self.store.counts()
        incidents = GaugeMetricFamily("hostdown_bridge_incidents", "Incidents by state", labels=["state"])
        for state, n in counts["incidents"].items():
            incidents.add_metric([state], n)
        signals = GaugeMetricFamily("hostdown_bridge_signals", "Stored signals by source", labels=["source"])
        for source, n in counts["signals"].items():
            signals.add_metric([source], n)
        servers = GaugeMetricFamily("hostdown_bridge_server_actions",
                                    "Open incidents' server rows by action and status", labels=["action", "status"])
        for (action, status), n in self.store.server_action_counts().items():
            servers.add_metric([action, status], n)
        return [incidents, signals, servers]


@bp.get("/metrics")
def metrics():
    registry = CollectorRegistry()
    registry.register(_StoreCollector(store()))
    shed = current_app.extensions["bridge"]["shed"]
    if shed is not None:
        registry.register(shed)
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


def openapi_document() -> dict:
    return yaml.safe_load(resources.files("bridge").joinpath("api/openapi.yaml").read_text())


@bp.get("/v1/openapi.json")
def openapi():
    return openapi_document()
