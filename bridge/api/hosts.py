"""Per-host operator actions: fencing confirmation, return to service."""

from __future__ import annotations

from flask import Blueprint, abort

from bridge.api.context import (config, current_engine, inventory, json_body, now, require_admin, required_reason,
                                store, stored_text, wake_engine)
from bridge import incidents as sm
from bridge.engine import policy_from
from bridge.hostnames import check_host_name
from bridge.inventory import InventoryUnavailable

bp = Blueprint("hosts", __name__)


def _known_host(host: str) -> str:
    """The host as Nova names it (exact, case, short name vs FQDN); 404 if Nova knows none."""
    if (bad_host := check_host_name(host)) is not None:
        abort(400, bad_host)
    try:
        resolved, why = inventory().resolve(host)
    except InventoryUnavailable as exc:
        abort(503, f"cannot check {host!r} against Nova: {exc}; retry")
    if resolved is None:
        abort(404, why)
    return resolved


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
    host = _known_host(host)
    actor = f"{token_name} ({operator.strip()})" if operator and operator.strip() else token_name
    window, detail = config()["fencing"]["confirmation_window"], {"token": token_name, "operator": operator}
    engine = current_engine()
    if engine is not None:  # it commits the step this confirmation settles in the same transaction
        return engine.confirm(host, actor, reason, now(), window, detail), 201
    return store().add_confirmation(host, actor, reason, now(), window, detail)[0], 201


RETURN_NOTE = ("The bridge undoes force-down, waits for nova-compute on {host} to report up, then {enable}. "
               "After an evacuation Nova refuses to undo force-down until nova-compute on the host has "
               "restarted and cleaned up the evacuated servers (their migrations move from done to completed): "
               "start it. The bridge asks again every {poll:g}s for up to {wait:g}s, then holds the incident "
               "with the reason; retry it once nova-compute runs.")


@bp.post("/v1/hosts/<host>/return")
def return_to_service(host: str):
    """A person returns an out-of-service host (never an alert resolving)."""
    actor = require_admin()
    reason = required_reason(json_body())
    host = _known_host(host)
    incident = store().open_incident_for(host)
    if incident is None:
        abort(404, f"no open incident for {host}: the bridge returns only a host it took out of service")
    policy = policy_from(config())
    try:
        incident = store().operator_action(incident["id"], sm.RETURN, actor, reason, now(), policy)
    except ValueError as exc:
        abort(409, str(exc))
    wake_engine(incident["id"])
    ret = policy.servers.returning
    enable = "enables it" if ret.enable else "leaves it disabled (servers.return.enable is false)"
    return {**incident, "note": RETURN_NOTE.format(host=host, enable=enable, poll=ret.poll_interval,
                                                   wait=ret.wait)}, 202
