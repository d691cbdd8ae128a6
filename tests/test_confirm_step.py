"""A confirmation and the fenced step it settles are committed together (Engine.confirm):
one commit where there were two, and the force-down begins from what was written."""

import logging
from datetime import timedelta

import sqlalchemy as sa

from bridge import incidents as sm
from bridge import engine as engine_module
from bridge.app import create_app
from bridge.store.tables import incidents
from tests.harness.bridge_process import ADMIN_TOKEN
from tests.test_engine import alert

NOVA_PAIR = [("force_down", "compute-01"), ("disable", "compute-01")]


def fencing_incident(bridge) -> dict:
    bridge.post_alert(alert())
    bridge.settle()
    inc = bridge.only_incident()
    assert inc["state"] == sm.FENCING
    return inc


def commits_during(store, run):
    seen = []

    def count(conn):
        seen.append(conn)
    sa.event.listen(store.engine, "commit", count)
    try:
        return run(), len(seen)
    finally:
        sa.event.remove(store.engine, "commit", count)


def confirm(bridge, host="compute-01", reason="PDU port off"):
    return bridge.engine.confirm(host, "ops", reason, bridge.clock(), 600, {"token": "ops"})


def test_the_confirmation_and_the_fenced_transition_are_one_commit_and_nova_waits_for_the_engine(
        live_bridge, fake_nova, caplog):
    inc = fencing_incident(live_bridge)
    record, commits = commits_during(live_bridge.store, lambda: confirm(live_bridge))
    assert commits == 1
    after = live_bridge.incident(inc["id"])
    assert after["state"] == sm.FENCED and after["proof_id"] == record["evidence_id"]
    assert fake_nova.calls == []  # the Nova calls are the engine's, after that commit
    with live_bridge.store.engine.connect() as conn:
        owner = conn.execute(sa.select(incidents.c.lease_owner).where(incidents.c.id == inc["id"])).scalar()
    assert owner == live_bridge.engine.owner  # held for the force-down that follows
    with caplog.at_level(logging.INFO, logger="bridge.decisions"):
        assert live_bridge.engine.run_once()
    done = live_bridge.incident(inc["id"])
    assert done["state"] == sm.OUT_OF_SERVICE and fake_nova.calls == NOVA_PAIR
    moves = [(t["from_state"], t["to_state"]) for t in done["timeline"] if t["from_state"] != t["to_state"]]
    assert moves.count((sm.FENCING, sm.FENCED)) == 1 and (sm.FENCED, sm.FORCED_DOWN) in moves
    logged = [r.getMessage() for r in caplog.records if "fencing -> fenced" in r.getMessage()]
    assert len(logged) == 1  # the transition committed with the confirmation is logged once, too


def test_an_incident_leased_by_another_worker_only_gets_the_evidence(live_bridge, fake_nova):
    inc = fencing_incident(live_bridge)
    until = live_bridge.clock() + timedelta(seconds=30)
    with live_bridge.store.engine.begin() as conn:
        conn.execute(incidents.update().where(incidents.c.id == inc["id"]).values(
            lease_owner="other-worker", lease_expires=until))
    record = confirm(live_bridge)
    after = live_bridge.incident(inc["id"])
    assert after["state"] == sm.FENCING and [e["id"] for e in after["evidence"]] == [record["evidence_id"]]
    live_bridge.settle()
    assert live_bridge.incident(inc["id"])["state"] == sm.FENCING and fake_nova.calls == []
    live_bridge.clock.advance(31)  # the other worker's lease ran out: this engine carries on
    live_bridge.settle()
    assert live_bridge.incident(inc["id"])["state"] == sm.OUT_OF_SERVICE and fake_nova.calls == NOVA_PAIR


def test_only_a_fencing_incident_is_leased_by_a_confirmation(live_bridge, fake_nova):
    early = confirm(live_bridge, host="compute-03")  # no incident yet: an early confirmation
    assert early["incident_id"] is None and early["expires_at"] is not None
    inc = fencing_incident(live_bridge)
    confirm(live_bridge)
    live_bridge.settle()
    done = live_bridge.incident(inc["id"])
    assert done["state"] == sm.OUT_OF_SERVICE
    again = confirm(live_bridge, reason="second look")  # more evidence: no lease, no step
    assert again["incident_id"] == inc["id"]
    with live_bridge.store.engine.connect() as conn:
        assert conn.execute(sa.select(incidents.c.lease_owner).where(incidents.c.id == inc["id"])).scalar() is None
    closed = live_bridge.admin("POST", f"/v1/incidents/{inc['id']}/close", json={"reason": "repaired"})
    assert closed.status_code == 200 and fake_nova.calls == NOVA_PAIR


def test_the_api_answers_as_before_when_its_worker_runs_the_engine(live_bridge, fake_nova):
    inc = fencing_incident(live_bridge)
    client = create_app(live_bridge.config, live_bridge.store, live_bridge.engine, clock=live_bridge.clock,
                        inventory=live_bridge.engine.inventory).test_client()
    answer = client.post("/v1/hosts/compute-01/fence-confirmation", json={"reason": "PDU port off"},
                         headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert answer.status_code == 201
    assert set(answer.json) == {"evidence_id", "incident_id", "host", "actor", "reason", "at", "expires_at"}
    assert answer.json["incident_id"] == inc["id"] and answer.json["expires_at"] is None
    assert live_bridge.incident(inc["id"])["state"] == sm.FENCED
    live_bridge.settle()
    assert live_bridge.incident(inc["id"])["state"] == sm.OUT_OF_SERVICE and fake_nova.calls == NOVA_PAIR


def test_a_claim_that_waited_for_a_thread_is_renewed_and_dropped_if_another_worker_took_it(
        live_bridge, fake_nova, monkeypatch):
    monkeypatch.setattr(engine_module, "HANDED_FRESH", 0.0)  # every handed claim has waited too long
    inc = fencing_incident(live_bridge)
    confirm(live_bridge)
    # meanwhile its lease ran out and another replica took the incident (a new epoch)
    with live_bridge.store.engine.begin() as conn:
        conn.execute(incidents.update().where(incidents.c.id == inc["id"]).values(
            lease_owner="other-replica", lease_expires=live_bridge.clock() + timedelta(seconds=30),
            epoch=incidents.c.epoch + 1))
    live_bridge.engine.run_once()
    assert fake_nova.calls == []  # the stale claim never reached Nova
    assert live_bridge.incident(inc["id"])["state"] == sm.FENCED


def test_a_claim_that_waited_but_is_still_held_is_renewed_and_carried_on(live_bridge, fake_nova, monkeypatch):
    monkeypatch.setattr(engine_module, "HANDED_FRESH", 0.0)
    inc = fencing_incident(live_bridge)
    confirm(live_bridge)
    live_bridge.engine.run_once()
    assert live_bridge.incident(inc["id"])["state"] == sm.OUT_OF_SERVICE and fake_nova.calls == NOVA_PAIR
