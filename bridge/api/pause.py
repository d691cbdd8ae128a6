"""The global pause: nothing new starts (gate pause); work in flight finishes. Kept in the
database, so it survives restarts and every worker process sees it."""

from __future__ import annotations

from flask import Blueprint

from bridge.api.context import json_body, now, require_admin, required_reason, store, wake_engine

bp = Blueprint("pause", __name__)


def _state(paused: str | None) -> dict:
    return {"paused": paused is not None, "detail": paused}


@bp.get("/v1/pause")
def get_pause():
    require_admin()
    return _state(store().pause_state())


def _set(on: bool) -> dict:
    actor = require_admin()
    reason = required_reason(json_body())
    state = store().set_pause(on, actor, reason, now())
    wake_engine()
    return _state(state)


@bp.post("/v1/pause")
def pause():
    return _set(True)


@bp.post("/v1/resume")
def resume():
    return _set(False)
