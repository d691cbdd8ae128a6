"""Per-host operator actions: fencing confirmation."""

from __future__ import annotations

from flask import Blueprint, abort

from bridge.api.context import config, inventory, json_body, now, require_admin, store, wake_engine
from bridge.inventory import InventoryUnavailable

bp = Blueprint("hosts", __name__)


@bp.post("/v1/hosts/<host>/fence-confirmation")
def fence_confirmation(host: str):
    token_name = require_admin()
    body = json_body()
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        abort(400, "reason: required, a non-empty string")
    operator = body.get("operator")
    if operator is not None and (not isinstance(operator, str) or len(operator) > 200):
        abort(400, "operator: must be a string of at most 200 characters")
    # the same resolution as for alerts: with a cloud, only a host Nova knows can be confirmed
    try:
        resolved, why = inventory().resolve(host)
    except InventoryUnavailable as exc:
        abort(503, f"cannot check {host!r} against Nova: {exc}; retry")
    if resolved is None:
        abort(404, why)
    host = resolved
    actor = f"{token_name} ({operator.strip()})" if operator and operator.strip() else token_name
    window = config()["fencing"]["confirmation_window"]
    record = store().add_confirmation(host, actor, reason.strip(), now(), window,
                                      detail={"token": token_name, "operator": operator})
    wake_engine()
    return record, 201
