"""Nagios Core (and Icinga 2, bridge/sources/icinga2.py): the JSON that the shipped
notification / event-handler script (alert_templates/nagios/hostdown_bridge_notify.py) posts.

One host or service state per request: host, address, service (empty for a host), state,
state_type, attempt, max_attempts, last_state_change (epoch seconds), notification_type
(empty from an event handler), downtime_depth, output, and labels (custom variables such
as openstack_host). Every value is a string, as the monitoring system expands it.

Status comes from the state alone: UP and OK resolve, every other state fires. So a
RECOVERY resolves, and an ACKNOWLEDGEMENT or a re-notification of the same problem is the
same signal again. starts_at is the last state change, which stays the same for every
notification of one episode (a replay is a duplicate) and changes with the next episode.

The fingerprint is host[!service]/STATE_TYPE. The state type is part of it because a
SOFT attempt and the HARD state that follows share their last_state_change: without it
the HARD problem would be taken as a repeat of the SOFT one, which no rule acts on. The
HARD recovery then resolves the HARD problem of the same object.
"""

from __future__ import annotations

from bridge.signals import FIRING, RESOLVED, Signal
from bridge.sources.base import PayloadError, Validator, epoch, fingerprint, is_number, load_json, shown, validate

HOST_STATES = ("UP", "DOWN", "UNREACHABLE")
SERVICE_STATES = ("OK", "WARNING", "CRITICAL", "UNKNOWN")
OK_STATES = ("UP", "OK")

NUMBER = {"type": "string"}  # digits, checked by is_number (a pattern here backtracked)
NUMBERS = ("attempt", "max_attempts", "last_state_change", "downtime_depth")
PAYLOAD_SCHEMA = {
    "type": "object",
    "required": ["host", "state", "state_type", "last_state_change"],
    "properties": {
        "host": {"type": "string"},
        "address": {"type": "string"},
        "service": {"type": "string"},
        "state": {"type": "string"},
        "state_type": {"type": "string"},
        "attempt": NUMBER,
        "max_attempts": NUMBER,
        "last_state_change": NUMBER,
        "notification_type": {"type": "string"},
        "downtime_depth": NUMBER,
        "output": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}
VALIDATOR = Validator(PAYLOAD_SCHEMA)
LABELS = ("host", "address", "service", "state", "state_type", "attempt", "max_attempts",
          "notification_type", "downtime_depth")


def parse_as(source: str, body: bytes) -> list[Signal]:
    payload = load_json(body)
    validate(payload, VALIDATOR)
    values = {k: v.strip() for k, v in payload.items() if isinstance(v, str) and v.strip()}
    for key in PAYLOAD_SCHEMA["required"]:
        if key not in values:
            raise PayloadError(f"{key}: must not be empty")
    for key in NUMBERS:
        if key in values and not is_number(values[key]):
            raise PayloadError(f"{key}: {shown(values[key])} is not a number")
    values["state"], values["state_type"] = values["state"].upper(), values["state_type"].upper()
    service = values.get("service")
    states = SERVICE_STATES if service else HOST_STATES
    if values["state"] not in states:
        raise PayloadError(f"state: {shown(values['state'])} is not a {'service' if service else 'host'} state "
                           f"({', '.join(states)})")
    if values["state_type"] not in ("HARD", "SOFT"):
        raise PayloadError(f"state_type: {shown(values['state_type'])} is not HARD or SOFT")
    if "notification_type" in values:
        values["notification_type"] = values["notification_type"].upper()
    labels = {k: v.strip() for k, v in (payload.get("labels") or {}).items() if v.strip()}
    labels.update({"object": "service" if service else "host",
                   **{key: values[key] for key in LABELS if key in values}})
    since = epoch(values["last_state_change"], "last_state_change")
    resolved = values["state"] in OK_STATES
    name = f"{values['host']}!{service}" if service else values["host"]
    return [Signal(
        source=source,
        fingerprint=fingerprint(f"{name}/{values['state_type']}", "host, service"),
        status=RESOLVED if resolved else FIRING,
        labels=labels,
        annotations={"output": values["output"]} if "output" in values else {},
        starts_at=since,
        ends_at=since if resolved else None,
        raw=payload,
    )]


def parse(body: bytes) -> list[Signal]:
    return parse_as("nagios", body)
