"""Manual fencing: a person (or the monitor that fenced the host) confirms, with who and why.

The confirmation (POST /v1/hosts/{host}/fence-confirmation) is stored as evidence of kind
"manual" bound to the host's incident; check() accepts it as proof.
"""

from __future__ import annotations

import shlex
from datetime import datetime

from bridge.effects import Evidence, FenceCheck, FenceRequest, Outcome
from bridge.incidents import Incident


class ManualFencing:
    name = "manual"

    def request(self, effect: FenceRequest, incident: Incident, *, dry_run: bool) -> Outcome:
        # nothing to switch off here: a person does it, so dry-run changes nothing either
        quoted = shlex.quote(incident.host)
        return Outcome(effect, f"waiting for a person to confirm {incident.host} is powered off", {
            "api": f"POST /v1/hosts/{incident.host}/fence-confirmation",
            "cli": f"hostdown-bridge fence confirm {quoted} --reason '...'",
        })

    def check(self, effect: FenceCheck, incident: Incident, evidence: tuple[Evidence, ...],
              now: datetime) -> Outcome:
        for item in evidence:
            if item.kind == self.name and item.incident_id == incident.id and item.host == incident.host:
                return Outcome(effect, proof=item)
        return Outcome(effect)  # pending until a confirmation arrives (it wakes the engine)
