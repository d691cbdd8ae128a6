"""Incidents and signals: the read side, and operator retry, close, cancel and gate approval."""

from __future__ import annotations

from flask import Blueprint, abort, request, url_for

from bridge.api.context import config, json_body, now, require_admin, required_reason, store, wake_engine
from bridge.engine import policy_from
from bridge.fencing.audit import attempts
from bridge.gates import APPROVABLE

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


def _number(name: str, default: int | None, low: int, high: int, what: str = "an integer") -> int | None:
    """A query parameter of ASCII digits only (int() would take '١٢', ' 1' or '1_0') within bounds."""
    raw = request.args.get(name)
    if raw is None:
        return default
    digits = raw.removeprefix("-")
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 100:
        abort(400, f"{name} must be {what}")
    value = int(raw)
    if not low <= value <= high:
        abort(400, f"{name} must be between {low} and {high}")
    return value


def _limit() -> int:
    return _number("limit", 100, 1, 1000)


def _cursor(name: str) -> int | None:
    """`before` or `after`: the id of the last item of the page before."""
    return _number(name, None, 0, _MAX_ID, "an integer (the last id of the page before)")


def _page(key: str, fetch, cursor: str) -> dict:
    """One page of `fetch(limit)` under `key`, and `next`: the link to the page after, or null."""
    limit = _limit()
    items = fetch(limit + 1)  # one more than asked: is there a page after?
    if items is None:
        abort(404, f"no incident {request.view_args['incident_id']}")
    more = len(items) > limit
    items = items[:limit]
    link = None
    if more:
        args = {**request.args.to_dict(), cursor: items[-1]["id"], "limit": limit}
        link = url_for(request.endpoint, **(request.view_args or {}), **args)
    return {key: items, "next": link}


def _links(incident: dict) -> dict:
    incident["links"] = {name: url_for(f"incidents.incident_{name}", incident_id=incident["id"])
                         for name in ("timeline", "evidence", "signals")}
    return incident


def _incident_id(incident_id: int) -> int:
    if incident_id > _MAX_ID:  # a larger id cannot exist
        abort(404, f"no incident {incident_id}")
    return incident_id


@bp.get("/v1/incidents")
def list_incidents():
    require_admin()
    _only_query("state", "host", "open", "limit", "before")
    state, host, open_only, before = (request.args.get("state"), request.args.get("host"), _flag("open"),
                                      _cursor("before"))
    return _page("incidents", lambda n: store().list_incidents(state=state, host=host, open_only=open_only,
                                                                limit=n, before=before), "before")


@bp.get("/v1/incidents/<int:incident_id>")
def get_incident(incident_id: int):
    require_admin()
    incident = store().get_incident(_incident_id(incident_id))
    if incident is None:
        abort(404, f"no incident {incident_id}")
    incident["attempts"] = attempts(incident["timeline"], incident["evidence"])
    return _links(incident)


def _incident_part(name: str):
    """GET /v1/incidents/<id>/<name>: the incident's `name` rows, oldest first, paged on `after`."""
    def view(incident_id: int):
        require_admin()
        _only_query("after", "limit")
        after, fetch = _cursor("after") or 0, getattr(store(), f"incident_{name}")
        return _page(name, lambda n: fetch(_incident_id(incident_id), after=after, limit=n), "after")

    bp.add_url_rule(f"/v1/incidents/<int:incident_id>/{name}", f"incident_{name}", view, methods=["GET"])


for _part in ("timeline", "evidence", "signals"):
    _incident_part(_part)


def _gate(body: dict, action: str) -> str | None:
    """approve names the one gate it releases (bridge/gates.py APPROVABLE); the others name none."""
    gate = body.get("gate")
    if action != "approve":
        if gate is not None:
            abort(400, f"gate: only approve takes a gate, not {action}")
        return None
    if not isinstance(gate, str) or gate not in APPROVABLE:
        abort(400, f"gate: required, one of {', '.join(sorted(APPROVABLE))}")
    return gate


@bp.post("/v1/incidents/<int:incident_id>/<any(retry, close, approve, cancel):action>")
def operator_action(incident_id: int, action: str):
    actor = require_admin()
    body = json_body()
    reason, gate = required_reason(body), _gate(body, action)
    try:
        incident = store().operator_action(_incident_id(incident_id), action, actor, reason, now(),
                                           policy_from(config()), gate=gate)
    except LookupError as exc:
        abort(404, str(exc))
    except ValueError as exc:
        abort(409, str(exc))
    wake_engine()
    return _links(incident)


@bp.get("/v1/signals")
def list_signals():
    require_admin()
    _only_query("unmapped", "limit", "before")
    unmapped, before = _flag("unmapped"), _cursor("before")
    return _page("signals", lambda n: store().list_signals(unmapped=unmapped, limit=n, before=before), "before")
