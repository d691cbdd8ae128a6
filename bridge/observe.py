"""What operators see of each committed transition: one log record (a JSON line under
`logging.format: json`) naming the incident, the host, the move and its cause, and the metrics.

Nothing secret reaches here: the cause and result are the timeline's own text.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError

from bridge import incidents as sm
from bridge import metrics

log = logging.getLogger("bridge.decisions")


def transition(store, incident: sm.Incident, decision: sm.Decision, outcome, now: datetime) -> None:
    fields = {"event": "transition", "incident": incident.id, "host": incident.host,
              "from_state": incident.state, "to_state": decision.to_state, "cause": decision.cause,
              "dry_run": incident.dry_run}
    if outcome is not None:
        fields["effect"] = type(outcome.effect).__name__
        fields["result"] = outcome.error or outcome.refused or outcome.note
    if decision.to_state in sm.WAITING_FOR_PERSON:
        fields["gate"] = metrics.hold_cause(incident.state, decision, outcome)
        metrics.held(fields["gate"])
    marks = None
    if decision.to_state in metrics.MARKED:
        try:
            marks = store.milestones(incident.id)
        except SQLAlchemyError:  # a metric is not worth a step: the transition is committed
            log.warning("incident %s: no timeline metrics, the database did not answer", incident.id)
    metrics.transition(incident.state, decision.to_state, now, marks)
    log.info("incident %s %s: %s -> %s: %s", incident.id, incident.host, incident.state, decision.to_state,
             decision.cause, extra={"decision": fields})
