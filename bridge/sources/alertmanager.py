"""Prometheus Alertmanager webhook (payload version 4)."""

from __future__ import annotations

from bridge.signals import Signal
from bridge.sources.base import Validator, fingerprint, load_json, parse_time, validate

STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
TIMESTAMP = {"type": "string"}  # RFC 3339, checked by parse_time

PAYLOAD_SCHEMA = {
    "type": "object",
    "required": ["version", "status", "alerts"],
    "properties": {
        "version": {"const": "4"},
        "status": {"enum": ["firing", "resolved"]},
        "receiver": {"type": "string"},
        "groupKey": {"type": "string"},
        "truncatedAlerts": {"type": "integer", "minimum": 0},
        "alerts": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["status", "labels", "startsAt", "fingerprint"],
                "properties": {
                    "status": {"enum": ["firing", "resolved"]},
                    "labels": {**STRING_MAP, "minProperties": 1},
                    "annotations": STRING_MAP,
                    "startsAt": TIMESTAMP,
                    "endsAt": TIMESTAMP,
                    "generatorURL": {"type": "string"},
                    "fingerprint": {"type": "string", "minLength": 1},
                },
            },
        },
    },
}
VALIDATOR = Validator(PAYLOAD_SCHEMA)


def parse(body: bytes) -> list[Signal]:
    payload = load_json(body)
    validate(payload, VALIDATOR)
    # truncatedAlerts > 0: Alertmanager dropped some alerts of the group
    # (max_alerts); they arrive in later notifications, nothing to do here.
    return [
        Signal(
            source="alertmanager",
            fingerprint=fingerprint(alert["fingerprint"], f"alerts[{i}].fingerprint"),
            status=alert["status"],
            labels=dict(alert["labels"]),
            annotations=dict(alert.get("annotations") or {}),
            starts_at=parse_time(alert["startsAt"], f"alerts[{i}].startsAt"),
            ends_at=parse_time(alert.get("endsAt"), f"alerts[{i}].endsAt"),
            raw=alert,
        )
        for i, alert in enumerate(payload["alerts"])
    ]
