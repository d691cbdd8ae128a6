"""A sender's mistake is a 400 that names the field and the reason, and stores nothing.

Each body here was answered 5xx (or taken as valid) before: the parsers only return
signals that can be stored, so no mistake reaches the store as a "retry" 503 or a 500.
"""

import json

import pytest

from tests.conftest import sample_json
from tests.sources.shipped import icinga2_body, icinga2_calls, nagios_body

ARABIC_INDIC = "٠١٢٣٤٥٦٧٨٩"


def localized(digits: str) -> str:
    """The same number in Arabic-Indic digits, which Python's int() and strptime() accept."""
    return "".join(ARABIC_INDIC[int(c)] if c.isdigit() else c for c in digits)


def alertmanager(change=None, **fields) -> bytes:
    body = sample_json("webhook_firing_api_v2.json")
    body["alerts"][0].update(fields)
    if change:
        change(body)
    return json.dumps(body).encode()  # ensure_ascii: a lone surrogate goes out as its \ud800 escape


def zabbix(**fields) -> bytes:
    return json.dumps({**sample_json("zabbix/webhook_problem.json")["body"], **fields}).encode()


def nagios(**fields) -> bytes:
    return json.dumps({**nagios_body("host_notification_PROBLEM.json"), **fields}).encode()


def icinga2(**fields) -> bytes:
    return json.dumps({**icinga2_body(icinga2_calls()[4]["vars"]), **fields}).encode()


def add_bad_second_alert(body):
    bad = dict(body["alerts"][0], fingerprint="second", startsAt="2024-13-45T99:99:99Z")
    body["alerts"].append(bad)


def labelled(value):
    return lambda body: body["alerts"][0]["labels"].update(openstack_host=value)


NESTED = b"[" * 200_000
# 2,048 bytes in UTF-8 that no database compresses: the longest fingerprint taken
UNCOMPRESSIBLE = "".join(chr(0x10000 + i) for i in range(512))

CASES = [
    # alertmanager: times
    ("alertmanager", alertmanager(startsAt="2024-13-45T99:99:99Z"), "alerts[0].startsAt: '2024-13-45T99:99:99Z'",
     "month must be in 1..12"),
    ("alertmanager", alertmanager(endsAt="2024-02-30T00:00:00Z"), "alerts[0].endsAt: '2024-02-30T00:00:00Z'",
     "day is out of range for month"),
    ("alertmanager", alertmanager(startsAt=localized("2024-01-01") + "T00:00:00Z"), "alerts[0].startsAt:",
     "is not an RFC 3339 time"),
    ("alertmanager", alertmanager(startsAt="2024-01-01T00:00:00." + localized("123") + "Z"), "alerts[0].startsAt:",
     "is not an RFC 3339 time"),
    ("alertmanager", alertmanager(startsAt="2024-01-01T00:00:00Z\n"), "alerts[0].startsAt:",
     "is not an RFC 3339 time"),
    ("alertmanager", alertmanager(startsAt="2024-01-01T00:00:00+01:75"), "alerts[0].startsAt:",
     "UTC offset must be in -23:59..+23:59"),
    ("alertmanager", alertmanager(startsAt="9999-12-31T23:59:59-01:00"), "alerts[0].startsAt:",
     "out of range once converted to UTC"),
    ("alertmanager", alertmanager(startsAt="0001-01-01T00:30:00+01:00"), "alerts[0].startsAt:",
     "out of range once converted to UTC"),
    # one bad alert spoils the body: nothing of it is stored
    ("alertmanager", alertmanager(add_bad_second_alert), "alerts[1].startsAt:", "month must be in 1..12"),
    # text that JSON can carry but no database can store
    ("alertmanager", alertmanager(fingerprint="\ud800"), "alerts[0].fingerprint:", "lone surrogate"),
    ("alertmanager", alertmanager(labelled("compute-\udfff01")), "alerts[0].labels.openstack_host:",
     "lone surrogate"),
    ("alertmanager", alertmanager(lambda b: b["alerts"][0]["labels"].update({"\ud800": "x"})),
     "alerts[0].labels: the key", "lone surrogate"),
    ("alertmanager", alertmanager(fingerprint="a\x00b"), "alerts[0].fingerprint:", "NUL character"),
    ("alertmanager", alertmanager(fingerprint=UNCOMPRESSIBLE + "f"), "alerts[0].fingerprint:", "is too long"),
    ("alertmanager", NESTED, "body:", "nested deeper than"),
    ("alertmanager", alertmanager(lambda b: b.update(extra=json.loads("[" * 40 + "]" * 40))), "extra",
     "nested deeper than"),
    # zabbix
    ("zabbix", zabbix(event_date="2026.13.45"), "event_date, event_time: '2026.13.45 19:24:12'",
     "month must be in 1..12"),
    ("zabbix", zabbix(event_date="2026.02.30"), "event_date, event_time:", "day is out of range for month"),
    ("zabbix", zabbix(event_date=localized("2026.11.24")), "event_date, event_time:",
     "is not 'YYYY.MM.DD HH:MM:SS'"),
    ("zabbix", zabbix(event_time="99:99:99"), "event_date, event_time:", "hour must be in 0..23"),
    ("zabbix", zabbix(event_id=localized("26")), "event_id:", "is not an event id"),
    ("zabbix", zabbix(event_id="9" * 21), "event_id:", "is not an event id (up to 20 digits)"),
    ("zabbix", zabbix(host_host="compute-\ud80001"), "host_host:", "lone surrogate"),
    ("zabbix", zabbix(event_tags=[{"tag": "openstack_host", "value": "\ud800"}]), "event_tags[0].value:",
     "lone surrogate"),
    ("zabbix", zabbix(event_tags="[" * 200_000), "event_tags:", "nested deeper than"),
    ("zabbix", zabbix(event_tags=json.dumps([{"tag": "openstack_host", "value": "\ud800"}])), "event_tags[0].value:",
     "lone surrogate"),
    ("zabbix", NESTED, "body:", "nested deeper than"),
]
for nagios_like, make in (("nagios", nagios), ("icinga2", icinga2)):
    CASES += [
        (nagios_like, make(last_state_change="1e400"), "last_state_change: '1e400'", "is not a number"),
        (nagios_like, make(last_state_change="nan"), "last_state_change: 'nan'", "is not a number"),
        (nagios_like, make(last_state_change="inf"), "last_state_change: 'inf'", "is not a number"),
        (nagios_like, make(last_state_change="9" * 400), "last_state_change:", "is not a time"),
        (nagios_like, make(last_state_change=localized("1795548045")), "last_state_change:", "is not a number"),
        (nagios_like, make(attempt=localized("3")), "attempt:", "is not a number"),
        (nagios_like, make(host=UNCOMPRESSIBLE), "host, service:", "is too long"),
        (nagios_like, make(service=UNCOMPRESSIBLE[:300], host=UNCOMPRESSIBLE[300:], state="CRITICAL"),
         "host, service:", "is too long"),
        (nagios_like, make(host="compute-\ud80001"), "host:", "lone surrogate"),
        (nagios_like, make(labels={"openstack_host": "\udc00"}), "labels.openstack_host:", "lone surrogate"),
        (nagios_like, NESTED, "body:", "nested deeper than"),
    ]


@pytest.mark.parametrize("source, data, field, reason", CASES)
def test_malformed_input_is_400_naming_field_and_reason_and_nothing_stored(bridge, source, data, field, reason):
    response = bridge.post_alert(data, source=source)
    assert response.status_code == 400, response.data[:300]
    message = response.json["message"]
    assert message.startswith(field) and reason in message, message
    assert bridge.store.list_signals(limit=10) == []


def test_the_longest_fingerprint_is_stored(bridge):
    assert bridge.post_alert(alertmanager(fingerprint=UNCOMPRESSIBLE)).status_code == 202
    assert bridge.post_alert(nagios(host=UNCOMPRESSIBLE[:-2]), source="nagios").status_code == 202
    assert len(bridge.store.list_signals(limit=10)) == 2


def test_a_long_key_is_named_cut_short(bridge):
    long_key = "k" * 100_000
    response = bridge.post_alert(alertmanager(lambda b: b["alerts"][0]["labels"].update({long_key: 3})))
    assert response.status_code == 400
    assert response.json["message"] == f"alerts[0].labels.{'k' * 57}...: 3 is not of type 'string'"
