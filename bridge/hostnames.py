"""The syntax of a compute host name, before it is looked up anywhere.

Nova keeps a service's host as a string of at most 255 characters (services.host), set from
nova.conf's [DEFAULT] host: a hostname, FQDN or IP address that must also be usable as an AMQP
routing key. So: letters, digits, '-', '_' and '.'; no leading dot and no empty label.
"""

from __future__ import annotations

import re

MAX_LENGTH = 255
_ALLOWED = re.compile(r"[A-Za-z0-9._-]+")


def check_host_name(name: str) -> str | None:
    """None if `name` can be a Nova compute host, else why not."""
    if not name:
        return "host: empty"
    if len(name) > MAX_LENGTH:
        return f"host: longer than {MAX_LENGTH} characters"
    if not _ALLOWED.fullmatch(name):
        bad = next(c for c in name if not _ALLOWED.fullmatch(c))
        return f"host: character {bad!r} not allowed (letters, digits, '-', '_', '.')"
    if name.startswith("."):
        return "host: starts with '.'"
    if ".." in name:
        return "host: contains '..'"
    return None
