"""Manual fencing: a person (or the monitor that fenced the host) confirms, with who and why."""

from __future__ import annotations

from bridge.incidents import Incident


class ManualFencing:
    name = "manual"

    def request(self, incident: Incident) -> tuple[str, dict]:
        return (
            f"waiting for a person to confirm {incident.host} is powered off",
            {
                "api": f"POST /v1/hosts/{incident.host}/fence-confirmation",
                "cli": f"hostdown-bridge fence confirm {incident.host} --reason '...'",
            },
        )
