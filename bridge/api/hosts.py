"""Per-host operator actions: fencing confirmation."""

from __future__ import annotations

from flask import Blueprint, abort

from bridge.api.context import (config, inventory, json_body, now, require_admin, required_reason, store,
                                stored_text, wake_engine)
from bridge.hostnames import check_host_name
from bridge.inventory import InventoryUnavailable

bp = Blueprint("hosts", __name__)


@bp.post("/v1/hosts/<host>/fence-confirmation")
def fence_confirmation(host: str):
    token_name = require_admin()
    if (bad_host := check_host_name(host)) is not None:
        abort(400, bad_host)
    body = json_body()
    reason = required_reason(body)
    operator = body.get("operator")
    if operator is not None and (not isinstance(operator, str) or len(operator) > 200):
        abort(400, "operator: must be a string of at most 200 characters")
    if operator is not None:
        stored_text("operator", operator)
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
    record = store().add_confirmation(host, actor, reason, now(), window,
                                      detail={"token": token_name, "operator": operator})
    wake_engine(record["incident_id"])
    return record, 201
