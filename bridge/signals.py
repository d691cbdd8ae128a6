"""The normalized signal every monitoring source is turned into."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from typing import Any

FIRING = "firing"
RESOLVED = "resolved"


@dataclasses.dataclass(frozen=True)
class Signal:
    source: str
    fingerprint: str
    status: str  # FIRING | RESOLVED
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime | None
    ends_at: datetime | None = None
    raw: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def dedup_key(self) -> str:
        """Same alert, same episode, same status: a sender's retry or repeat.

        The start is the instant in UTC, whatever offset the sender wrote it at; keys stored
        before were written from UTC times too, so they keep matching."""
        started = self.starts_at.astimezone(timezone.utc).isoformat() if self.starts_at else "-"
        return f"{self.source}|{self.fingerprint}|{started}|{self.status}"
