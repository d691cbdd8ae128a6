"""One module per monitoring system; each turns a request body into Signals.

Sources know nothing of Nova, rules or storage.
"""

from __future__ import annotations

from types import ModuleType

from bridge.sources import alertmanager, icinga2, nagios, zabbix
from bridge.sources.base import PayloadError

PARSERS: dict[str, ModuleType] = {
    "alertmanager": alertmanager,
    "zabbix": zabbix,
    "nagios": nagios,
    "icinga2": icinga2,
}

__all__ = ["PARSERS", "PayloadError", "parse"]


def parse(source: str, body: bytes) -> list:
    return PARSERS[source].parse(body)
