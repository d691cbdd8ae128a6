"""The pure state machine: the safety properties hold for every state and world."""

import itertools
from datetime import datetime, timedelta, timezone

import pytest

from bridge import incidents as sm
from bridge.incidents import Incident, Proof, World, decide

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
PROOF = Proof(7, "manual", "ops (alice)", "PDU port 4 off", NOW)
ALL_STATES = [sm.SUSPECTED, sm.FENCING, sm.FENCED, sm.FORCED_DOWN, sm.NOVA_DOWN, sm.DONE,
              sm.HELD, sm.FAILED]


def world(firing=1, proof=None, now=NOW, on_timeout=sm.HELD):
    return World(now=now, firing=firing, proof=proof, fencing_timeout=300, on_timeout=on_timeout)


def incident(state, deadline=None):
    return Incident(id=1, host="compute-01", state=state, dry_run=False, fence_deadline=deadline)


@pytest.mark.parametrize("state, firing", list(itertools.product(ALL_STATES, [0, 1, 3])))
def test_no_nova_effect_without_fencing_proof(state, firing):
    decision = decide(incident(state, NOW), world(firing=firing, proof=None))
    assert decision.effect not in (sm.FORCE_DOWN, sm.DISABLE)
    assert decision.to_state not in (sm.FENCED, sm.FORCED_DOWN, sm.NOVA_DOWN, sm.DONE)


def test_happy_path_in_order():
    state, seen, effects = sm.SUSPECTED, [], []
    inc = incident(state)
    for _ in range(10):
        decision = decide(inc, world(proof=PROOF))
        if decision.to_state is None:
            break
        seen.append(decision.to_state)
        effects.append(decision.effect)
        inc = Incident(1, "compute-01", decision.to_state, False, decision.fence_deadline or inc.fence_deadline)
    assert seen == [sm.FENCING, sm.FENCED, sm.FORCED_DOWN, sm.NOVA_DOWN, sm.DONE]
    # force-down strictly before disable: Nova refuses to disable an unreachable compute
    assert effects == [sm.FENCE_REQUEST, None, sm.FORCE_DOWN, sm.DISABLE, None]


def test_fencing_waits_until_the_deadline_then_holds():
    deadline = NOW + timedelta(seconds=300)
    waiting = decide(incident(sm.FENCING, deadline), world())
    assert waiting.to_state is None and waiting.due_at == deadline
    late = decide(incident(sm.FENCING, deadline), world(now=deadline))
    assert late.to_state == sm.HELD and "no fencing proof within 300s" in late.cause
    assert decide(incident(sm.FENCING, deadline), world(now=deadline, on_timeout=sm.FAILED)).to_state == sm.FAILED


@pytest.mark.parametrize("state", [sm.SUSPECTED, sm.FENCING])
def test_resolved_before_fencing_cancels(state):
    assert decide(incident(state, NOW + timedelta(seconds=60)), world(firing=0)).to_state == sm.CANCELLED


@pytest.mark.parametrize("state", [sm.FENCED, sm.FORCED_DOWN, sm.NOVA_DOWN, sm.DONE])
def test_resolved_after_fencing_does_not_undo_anything(state):
    decision = decide(incident(state), world(firing=0, proof=PROOF))
    assert decision.to_state != sm.CANCELLED


def test_proof_wins_over_a_resolved_alert_once_confirmed():
    # the host was powered off: it is down whatever the alert says now
    assert decide(incident(sm.FENCING, NOW), world(firing=0, proof=PROOF)).to_state == sm.FENCED


@pytest.mark.parametrize("state", [sm.HELD, sm.FAILED, sm.DONE])
def test_states_that_wait_for_a_person_do_nothing(state):
    decision = decide(incident(state), world(proof=PROOF))
    assert decision.to_state is None and decision.effect is None and decision.due_at is None


def test_disabled_reason_names_the_bridge_and_the_incident_and_fits_nova():
    reason = sm.disabled_reason("nova-hostdown-bridge", incident(sm.FORCED_DOWN), PROOF)
    assert reason.startswith("nova-hostdown-bridge: incident 1")
    long = Proof(1, "manual", "x" * 400, "r", NOW)
    assert len(sm.disabled_reason("nova-hostdown-bridge", incident(sm.FORCED_DOWN), long)) == 255
