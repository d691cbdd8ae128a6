"""The statements of the engine's hot path, built once with bound parameters.

A statement built per call costs SQLAlchemy more than running it (construction and its
cache key, ~0.3 ms each); one built once is looked up in the compiled cache at once. Plain
Core constructs: the same statements run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import functools

import sqlalchemy as sa

from bridge.store.tables import UTCDateTime, evidence, incidents, timeline

NOW = sa.bindparam("now", type_=UTCDateTime)
_FREE = sa.or_(incidents.c.lease_owner.is_(None), incidents.c.lease_expires < NOW)

INCIDENT = sa.select(incidents).where(incidents.c.id == sa.bindparam("incident"))
# an incident and its evidence in one read: a row per piece of evidence, its columns named ev_*
# (one row with ev_id NULL when there is none)
SNAPSHOT = (sa.select(incidents, *(column.label(f"ev_{column.name}") for column in evidence.c))
            .select_from(incidents.outerjoin(evidence, evidence.c.incident_id == incidents.c.id))
            .where(incidents.c.id == sa.bindparam("incident")).order_by(evidence.c.id))
EVIDENCE_OF = sa.select(evidence).where(evidence.c.incident_id == sa.bindparam("incident")).order_by(evidence.c.id)
ADD_EVIDENCE = evidence.insert()
ADD_TIMELINE = timeline.insert()
SET_PROOF = incidents.update().where(incidents.c.id == sa.bindparam("incident")).values(proof_id=sa.bindparam("proof"))

# a confirmation for a host: its open incident looks again now; says what it was
NUDGE_OPEN = (incidents.update()
              .where(incidents.c.host == sa.bindparam("on_host"), incidents.c.closed_at.is_(None))
              .values(due_at=NOW, nudges=incidents.c.nudges + 1)
              .returning(incidents.c.id, incidents.c.state, incidents.c.proof_id))

CLAIM = (incidents.update()
         .where(incidents.c.id == sa.bindparam("incident"), incidents.c.closed_at.is_(None), incidents.c.due_at <= NOW, _FREE)
         .values(lease_owner=sa.bindparam("worker"), lease_expires=sa.bindparam("until", type_=UTCDateTime),
                 epoch=incidents.c.epoch + 1)
         .returning(*incidents.c))

# a lease still held, taken again for longer (a claim handed between threads, grown old)
RENEW = (incidents.update()
         .where(incidents.c.id == sa.bindparam("incident"), incidents.c.epoch == sa.bindparam("at_epoch"),
                incidents.c.lease_owner == sa.bindparam("worker"), incidents.c.lease_expires > NOW)
         .values(lease_expires=sa.bindparam("until", type_=UTCDateTime), epoch=incidents.c.epoch + 1)
         .returning(*incidents.c))

DUE = (sa.select(incidents.c.id)
       .where(incidents.c.closed_at.is_(None), incidents.c.due_at <= NOW, _FREE)
       .order_by(incidents.c.due_at).limit(sa.bindparam("limit")))

_HELD = sa.and_(incidents.c.lease_owner.is_not(None), incidents.c.lease_expires > NOW)
NEXT_DUE = sa.select(sa.func.min(sa.type_coerce(
    sa.case((_HELD, incidents.c.lease_expires), else_=incidents.c.due_at), UTCDateTime))).where(
    incidents.c.closed_at.is_(None), incidents.c.due_at.is_not(None))


@functools.lru_cache(maxsize=None)
def advance(columns: tuple[str, ...], unleased: bool, known_proof: bool):
    """The conditional UPDATE that commits a step, one per shape of decision.

    `columns` are set from parameters named `set_<column>`. Without `due_at` among them,
    an event that came during the step (nudges moved) makes the incident due now. The
    guard: same epoch and, leased, our lease (`worker`); unleased, nobody's lease and still
    open, taking a new epoch. `known_proof`: proof_id becomes evidence `proof` only if that
    evidence is this incident's (else NULL, which the caller refuses).
    """
    values = {column: sa.bindparam(f"set_{column}", type_=incidents.c[column].type) for column in columns}
    values["updated_at"] = NOW
    if "due_at" not in values:
        values["due_at"] = sa.case((incidents.c.nudges != sa.bindparam("seen_nudges"), NOW),
                                   else_=sa.bindparam("due", type_=UTCDateTime))
    if unleased:
        held = sa.and_(_FREE, incidents.c.closed_at.is_(None))
        values["epoch"] = incidents.c.epoch + 1
    else:
        held = incidents.c.lease_owner == sa.bindparam("worker")
    if known_proof:
        values["proof_id"] = sa.select(evidence.c.id).where(
            evidence.c.id == sa.bindparam("proof"), evidence.c.incident_id == incidents.c.id,
            evidence.c.host == incidents.c.host).scalar_subquery()
    return (incidents.update()
            .where(incidents.c.id == sa.bindparam("incident"), incidents.c.epoch == sa.bindparam("at_epoch"), held)
            .values(values).returning(incidents.c.nudges, incidents.c.proof_id))
