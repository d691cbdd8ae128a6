"""Incidents and signals: the read side, and operator retry/close."""

from __future__ import annotations

from flask import Blueprint, abort, request

from bridge.api.context import config, json_body, now, require_admin, store, wake_engine
from bridge.engine import policy_from

bp = Blueprint("incidents", __name__)


def _limit() -> int:
    try:
        value = int(request.args.get("limit", 100))
    except ValueError:
        abort(400, "limit must be an integer")
    if not 1 <= value <= 1000:
        abort(400, "limit must be between 1 and 1000")
    return value


@bp.get("/v1/incidents")
def list_incidents():
    require_admin()
    items = store().list_incidents(state=request.args.get("state"), host=request.args.get("host"),
                                   open_only=request.args.get("open") in ("1", "true"), limit=_limit())
    return {"incidents": items}


@bp.get("/v1/incidents/<int:incident_id>")
def get_incident(incident_id: int):
    require_admin()
    incident = store().get_incident(incident_id)
    if incident is None:
        abort(404, f"no incident {incident_id}")
    return incident


@bp.post("/v1/incidents/<int:incident_id>/<any(retry, close):action>")
def operator_action(incident_id: int, action: str):
    actor = require_admin()
    reason = str(json_body().get("reason") or "").strip()
    if not reason:
        abort(400, "reason: required, a non-empty string")
    try:
        incident = store().operator_action(incident_id, action, actor, reason, now(), policy_from(config()))
    except LookupError as exc:
        abort(404, str(exc))
    except ValueError as exc:
        abort(409, str(exc))
    wake_engine()
    return incident


@bp.get("/v1/signals")
def list_signals():
    require_admin()
    return {"signals": store().list_signals(unmapped=request.args.get("unmapped") in ("1", "true"),
                                            limit=_limit())}
