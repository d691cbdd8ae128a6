"""Icinga 2: the same body as Nagios, from the same script (alert_templates/icinga2/).

Its own source so it has its own token and its own rules. One difference seen on the
real system: at the HARD transition Icinga reports attempt 1 where Nagios reports
max_attempts, so rules should test state_type, never the attempt count.
"""

from __future__ import annotations

from bridge.signals import Signal
from bridge.sources.nagios import parse_as


def parse(body: bytes) -> list[Signal]:
    return parse_as("icinga2", body)
