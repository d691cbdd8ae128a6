"""Each fencing attempt of an incident, as its timeline and evidence recorded it: the driver, the
target (never a secret), what was requested and when, what came of it, the state read back and
when, and how long each part took. GET /v1/incidents/{id} and `incidents show` display it."""

from __future__ import annotations

from typing import Any, Iterable

from bridge.fencing.power import ACTOR

_FROM = ("suspected", "fencing")  # where attempts are recorded (requests, failures)


def _address(detail: dict) -> str | None:
    target = detail.get("target") or {}
    return target.get("address") or (target.get("options") or {}).get("node")


def attempts(timeline: Iterable[dict], evidence: Iterable[dict]) -> list[dict[str, Any]]:
    """The attempts, oldest first: one entry per request, failure and read-back proof."""
    out: list[dict[str, Any]] = []
    known: dict[int, str | None] = {}  # method -> its address, for a time-out (decided without one)
    for entry in timeline:
        detail = entry.get("detail") or {}
        # decide() marks attempts so (a shadow plan names a driver too, but is no attempt)
        if entry.get("from_state") not in _FROM or "attempt" not in detail or "driver" not in detail:
            continue
        address = known[detail["method"]] = _address(detail) or known.get(detail["method"])
        out.append({"at": entry["at"], "driver": detail["driver"], "method": detail["method"],
                    "attempt": detail["attempt"], "result": detail.get("result"), "address": address,
                    "requested": detail.get("requested"), "error": detail.get("error"),
                    "power_off_ms": detail.get("power_off_ms")})
    for ev in evidence:
        detail = ev.get("detail") or {}
        if ev.get("actor") != ACTOR or "target" not in detail:
            continue
        out.append({"at": ev["at"], "driver": ev["kind"], "method": detail.get("method"),
                    "attempt": detail.get("attempt"), "result": "proof", "address": _address(detail),
                    "requested": detail.get("requested"), "requested_at": detail.get("requested_at"),
                    "state": detail.get("state"), "read_at": detail.get("read_at"),
                    "durations_ms": detail.get("durations_ms")})
    return sorted(out, key=lambda a: str(a["at"]))
