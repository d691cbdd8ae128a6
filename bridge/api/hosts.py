"""Per-host operator actions: fencing confirmation."""

from __future__ import annotations

from flask import Blueprint, abort

from bridge.api.context import config, json_body, now, require_admin, store, wake_engine
from bridge.hostnames import check_host_name
from bridge.rules import resolve_host

bp = Blueprint("hosts", __name__)


@bp.post("/v1/hosts/<host>/fence-confirmation")
def fence_confirmation(host: str):
    if (bad_host := check_host_name(host)) is not None:
        abort(400, bad_host)
    token_name = require_admin()
    body = json_body()
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        abort(400, "reason: required, a non-empty string")
    operator = body.get("operator")
    if operator is not None and (not isinstance(operator, str) or len(operator) > 200):
        abort(400, "operator: must be a string of at most 200 characters")
    known, _ = store().inventory()
    if known:  # with a cloud, only hosts Nova knows can be confirmed
        resolved, why = resolve_host(host, known)
        if resolved is None:
            abort(404, why)
        host = resolved
    actor = f"{token_name} ({operator.strip()})" if operator and operator.strip() else token_name
    window = config()["fencing"]["confirmation_window"]
    record = store().add_confirmation(host, actor, reason.strip(), now(), window,
                                      detail={"token": token_name, "operator": operator})
    wake_engine()
    return record, 201
