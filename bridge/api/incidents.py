"""Incidents and signals: the read side, and operator retry/close."""

from __future__ import annotations

from flask import Blueprint, abort, request

from bridge.api.context import config, json_body, now, require_admin, required_reason, store, wake_engine
from bridge.engine import policy_from

bp = Blueprint("incidents", __name__)

_FLAGS = {"1": True, "true": True, "0": False, "false": False}
_MAX_ID = 2**63 - 1  # a larger id cannot exist in a 64-bit integer column


def _only_query(*names: str) -> None:
    unknown = sorted(set(request.args) - set(names))
    if unknown:
        abort(400, f"unknown query parameter {unknown[0]!r}; known: {', '.join(names)}")


def _flag(name: str) -> bool:
    value = request.args.get(name, "0")
    if value not in _FLAGS:
        abort(400, f"{name}: must be one of 1, 0, true, false")
    return _FLAGS[value]


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
    _only_query("state", "host", "open", "limit")
    items = store().list_incidents(state=request.args.get("state"), host=request.args.get("host"),
                                   open_only=_flag("open"), limit=_limit())
    return {"incidents": items}


@bp.get("/v1/incidents/<int:incident_id>")
def get_incident(incident_id: int):
    require_admin()
    incident = store().get_incident(incident_id) if incident_id <= _MAX_ID else None
    if incident is None:
        abort(404, f"no incident {incident_id}")
    return incident


@bp.post("/v1/incidents/<int:incident_id>/<any(retry, close):action>")
def operator_action(incident_id: int, action: str):
    actor = require_admin()
    reason = required_reason(json_body())
    if incident_id > _MAX_ID:
        abort(404, f"no incident {incident_id}")
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
    _only_query("unmapped", "limit")
    return {"signals": store().list_signals(unmapped=_flag("unmapped"),
                                            limit=_limit())}
