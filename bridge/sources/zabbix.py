"""Zabbix Webhook media type (alert_templates/zabbix/): one trigger event per request.

Zabbix sends every parameter as a string and leaves a macro it cannot resolve as its own
text ("{EVENT.RECOVERY.ID}" in a problem, "{$ZABBIX.URL}" when undefined): such values
count as absent. A recovery carries the problem's id in event_id, so the fingerprint (the
problem event id) resolves exactly the problem it ends; an update (acknowledge, comment)
repeats the problem's fingerprint, start and status and so is stored as a duplicate.

Labels: host ({HOST.HOST}, the technical name), host_name ({HOST.NAME}, visible name),
host_ip, severity (name), nseverity (0-5), trigger (event name), trigger_id, event_source,
and one label per event tag: tag_<tag name> (values of a repeated tag joined by ",").
"""

from __future__ import annotations

import re
from datetime import datetime

from bridge.signals import FIRING, RESOLVED, Signal
from bridge.sources.base import PayloadError, Validator, decode_json, instant, load_json, shown, validate

TAG = {"type": "object", "required": ["tag"],
       "properties": {"tag": {"type": "string", "minLength": 1}, "value": {"type": "string"}}}
PAYLOAD_SCHEMA = {
    "type": "object",
    "required": ["event_id", "event_value"],
    "properties": {"event_tags": {"anyOf": [{"type": "string"}, {"type": "array", "items": TAG}]}},
    "additionalProperties": {"type": "string"},
}
VALIDATOR = Validator(PAYLOAD_SCHEMA)
# an older script may pass {EVENT.TAGSJSON} on as the string it is
TAGS_VALIDATOR = Validator({"properties": {"event_tags": {"type": "array", "items": TAG}}})
# "{EVENT.ID}", "{$USER.MACRO}", "{$MACRO:context}", "{#LLD.MACRO}", "{?expression}", "{EVENT.TAGS.name}"
# (linear: one run of non-braces, then the one character it excludes)
UNRESOLVED = re.compile(r"\{[A-Z$#?][^{}]*\}")
EVENT_ID_DIGITS = 20  # an unsigned 64-bit id in Zabbix's database
EVENT_TIME = re.compile(r"([0-9]{4})\.([0-9]{2})\.([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})")

LABELS = {"host_name": "host_name", "host_ip": "host_ip", "event_severity": "severity",
          "event_nseverity": "nseverity", "trigger_id": "trigger_id", "event_source": "event_source"}
ANNOTATIONS = {"alert_subject": "subject", "alert_message": "message", "trigger_description": "description",
               "item_value": "item_value", "event_ack": "acknowledged", "event_update_status": "update",
               "event_recovery_id": "recovery_event_id", "zabbix_url": "url"}


def _present(payload: dict) -> dict[str, str]:
    """The string fields that carry a value: not empty, not an unresolved macro."""
    return {k: v.strip() for k, v in payload.items()
            if isinstance(v, str) and v.strip() and not UNRESOLVED.fullmatch(v.strip())}


def _when(values: dict, date_key: str, time_key: str) -> datetime | None:
    """{EVENT.DATE} {EVENT.TIME}: "2026.11.24" "19:24:12", in the recipient user's time
    zone; the shipped setup gives that user UTC (alert_templates/zabbix/README.md)."""
    if date_key not in values or time_key not in values:
        return None
    text = f"{values[date_key]} {values[time_key]}"
    found = EVENT_TIME.fullmatch(text)
    if found is None:
        raise PayloadError(f"{date_key}, {time_key}: {shown(text)} is not 'YYYY.MM.DD HH:MM:SS'")
    return instant(f"{date_key}, {time_key}", text, tuple(map(int, found.groups())))


def _tags(raw) -> dict[str, str]:
    if isinstance(raw, str):
        raw = raw.strip()
        if not raw or UNRESOLVED.fullmatch(raw):
            return {}
        raw = decode_json(raw, ("event_tags",), "the JSON of {EVENT.TAGSJSON}")
        validate({"event_tags": raw}, TAGS_VALIDATOR)
    labels: dict[str, list[str]] = {}
    for item in raw or []:
        labels.setdefault(f"tag_{item['tag']}", []).append(item.get("value", ""))
    return {name: ",".join(sorted(set(values))) for name, values in labels.items()}


def parse(body: bytes) -> list[Signal]:
    payload = load_json(body)
    validate(payload, VALIDATOR)
    values = _present(payload)
    for key in ("event_id", "event_value"):
        if key not in values:
            raise PayloadError(f"{key}: empty or an unresolved macro ({shown(payload[key])})")
    event_id = values["event_id"]
    if not (event_id.isascii() and event_id.isdigit() and len(event_id) <= EVENT_ID_DIGITS):
        raise PayloadError(f"event_id: {shown(event_id)} is not an event id (up to {EVENT_ID_DIGITS} digits)")
    if values["event_value"] not in ("0", "1"):
        raise PayloadError(f"event_value: {shown(values['event_value'])} is not '1' (problem) or '0' (recovery)")
    host = values.get("host_host") or values.get("host_name")
    if host is None:
        raise PayloadError("host_host: empty or an unresolved macro, and so is host_name")
    labels = {"host": host, **{label: values[key] for key, label in LABELS.items() if key in values}}
    trigger = values.get("trigger_name") or values.get("event_name")
    if trigger:
        labels["trigger"] = trigger
    labels.update(_tags(payload.get("event_tags")))
    resolved = values["event_value"] == "0"
    return [Signal(
        source="zabbix",
        fingerprint=values["event_id"],
        status=RESOLVED if resolved else FIRING,
        labels=labels,
        annotations={name: values[key] for key, name in ANNOTATIONS.items() if key in values},
        starts_at=_when(values, "event_date", "event_time"),
        ends_at=_when(values, "event_recovery_date", "event_recovery_time") if resolved else None,
        raw=payload,
    )]
