"""The pure decision core: examples of each rule. tests/test_decide_properties.py drives it at random."""

import dataclasses
from datetime import datetime, timedelta, timezone

import pytest

from bridge import incidents as sm
from bridge.effects import Disable, Evidence, FenceCheck, FenceRequest, ForceDown, ListServers, Outcome, ReturnHost
from bridge.incidents import Facts, Incident, OperatorAction, Policy, Signals, decide

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
DEADLINE = NOW + timedelta(seconds=300)


def incident(state, deadline=DEADLINE, **kw):
    return Incident(id=1, host="compute-01", state=state, dry_run=False, fence_deadline=deadline, **kw)


def proof_for(inc=None, evidence_id=7, incident_id=1, host="compute-01"):
    return Evidence(evidence_id, incident_id, host, "manual", "ops (alice)", "PDU port 4 off", NOW)


def facts(state, firing=1, proof=None, now=NOW, on_timeout=sm.HELD, **kw):
    return Facts(now=now, incident=kw.pop("inc", incident(state)), signals=Signals({"alertmanager": firing}),
                 evidence=(proof,) if proof else (), proof=proof,
                 policy=Policy(fencing_timeout=300, on_timeout=on_timeout), **kw)


def run(f: Facts, outcome: Outcome):
    """decide() once for the effect, once with its outcome."""
    first = decide(f)
    assert first.effect is not None and first.to_state is None
    return first.effect, decide(dataclasses.replace(f, outcome=outcome(first.effect)))


def test_happy_path_in_order_force_down_strictly_before_disable():
    proof = proof_for()
    state, seen, effects = sm.SUSPECTED, [], []
    inc = incident(state, deadline=None)
    for _ in range(10):
        f = dataclasses.replace(facts(state, inc=inc), evidence=(proof,),
                                proof=proof if inc.proof_id == proof.id else None)
        decision = decide(f)
        if decision.effect is not None:
            effects.append(type(decision.effect))
            decision = decide(dataclasses.replace(f, outcome=Outcome(decision.effect, proof=proof)))
        if decision.to_state is None:
            break
        seen.append(decision.to_state)
        inc = dataclasses.replace(inc, state=decision.to_state, fence_deadline=decision.fence_deadline or inc.fence_deadline,
                                  proof_id=decision.proof.id if decision.proof else inc.proof_id)
        state = decision.to_state
    assert seen == [sm.FENCING, sm.FENCED, sm.FORCED_DOWN, sm.NOVA_DOWN, sm.OUT_OF_SERVICE]
    # FenceCheck found the confirmation; Nova refuses to disable an unreachable compute first
    assert effects == [FenceRequest, FenceCheck, ForceDown, Disable, ListServers]  # no servers: nothing more


def test_fence_request_sets_the_deadline_and_fencing_checks_until_it():
    effect, decision = run(facts(sm.SUSPECTED), lambda e: Outcome(e, "waiting for a person"))
    assert isinstance(effect, FenceRequest)
    assert decision.to_state == sm.FENCING and decision.fence_deadline == NOW + timedelta(seconds=300)
    effect, waiting = run(facts(sm.FENCING), lambda e: Outcome(e))
    assert isinstance(effect, FenceCheck) and waiting.to_state is None and waiting.due_at == DEADLINE


def test_a_driver_pending_with_a_recheck_time_is_looked_at_again_then():
    soon = NOW + timedelta(seconds=5)
    _, waiting = run(facts(sm.FENCING), lambda e: Outcome(e, recheck_at=soon))
    assert waiting.due_at == soon


def test_fencing_times_out_to_held_or_failed_and_remembers_where():
    late = decide(facts(sm.FENCING, now=DEADLINE))
    assert late.to_state == sm.HELD and "no fencing proof within 300s" in late.cause
    assert late.resume_state == sm.FENCING and late.effect is None
    assert decide(facts(sm.FENCING, now=DEADLINE, on_timeout=sm.FAILED)).to_state == sm.FAILED


def test_proof_found_by_the_check_becomes_this_incidents_proof():
    found = Evidence(None, None, "compute-01", "redfish", "bmc", "PowerState Off", NOW)
    _, decision = run(facts(sm.FENCING), lambda e: Outcome(e, proof=found))
    assert decision.to_state == sm.FENCED and decision.proof.incident_id == 1 and decision.proof.kind == "redfish"


@pytest.mark.parametrize("foreign", [proof_for(incident_id=2), proof_for(host="compute-02")])
def test_proof_of_another_incident_or_host_is_not_proof(foreign):
    _, decision = run(facts(sm.FENCING), lambda e: Outcome(e, proof=foreign))
    assert decision.to_state is None
    for state in (sm.FENCED, sm.FORCED_DOWN, sm.NOVA_DOWN):
        held = decide(facts(state, proof=foreign))
        assert held.to_state == sm.HELD and held.effect is None and "refusing to touch Nova" in held.cause


def test_a_driver_that_refuses_holds_the_incident():
    _, decision = run(facts(sm.FENCING), lambda e: Outcome(e, refused="no BMC address for compute-01"))
    assert decision.to_state == sm.HELD and "no BMC address" in decision.cause


@pytest.mark.parametrize("state", [sm.SUSPECTED, sm.FENCING])
def test_resolved_before_fencing_cancels(state):
    decision = decide(facts(state, firing=0))
    assert decision.to_state == sm.CANCELLED and decision.closes


@pytest.mark.parametrize("state", [sm.FENCED, sm.FORCED_DOWN, sm.NOVA_DOWN, sm.OUT_OF_SERVICE])
def test_resolved_after_fencing_undoes_nothing(state):
    decision = decide(facts(state, firing=0, proof=proof_for()))
    assert decision.to_state in (None, sm.OUT_OF_SERVICE) or decision.effect is not None


def test_proof_wins_over_a_resolved_alert():
    # the host was powered off: it is down whatever the alert says now
    assert decide(facts(sm.FENCING, firing=0, proof=proof_for())).to_state == sm.FENCED


@pytest.mark.parametrize("state", [sm.HELD, sm.FAILED, sm.OUT_OF_SERVICE, sm.CLOSED, sm.CANCELLED])
def test_states_that_wait_for_a_person_do_nothing_by_themselves(state):
    decision = decide(facts(state, proof=proof_for()))
    assert decision.to_state is None and decision.effect is None and decision.due_at is None


def test_a_nova_error_holds_where_it_stopped():
    _, decision = run(facts(sm.FENCED, proof=proof_for()), lambda e: Outcome(e, error="nova force down failed: 500"))
    assert decision.to_state == sm.HELD and decision.resume_state == sm.FENCED and "500" in decision.last_error


def test_dry_run_outcome_says_nova_was_not_called():
    _, decision = run(facts(sm.FENCED, proof=proof_for()), lambda e: Outcome(e, "would", dry_run=True))
    assert decision.to_state == sm.FORCED_DOWN and decision.cause.endswith("(dry-run: Nova not called)")


def test_disable_carries_the_reason_naming_the_incident_and_the_proof():
    effect = decide(facts(sm.FORCED_DOWN, proof=proof_for())).effect
    assert effect == Disable("compute-01", reason="nova-hostdown-bridge: incident 1, host down and fenced "
                                                  "(manual by ops (alice))")


def test_disabled_reason_fits_nova():
    long = Evidence(1, 1, "compute-01", "manual", "x" * 400, "r", NOW)
    assert len(sm.disabled_reason("nova-hostdown-bridge", incident(sm.FORCED_DOWN), long)) == 255


# ---- operators ----------------------------------------------------------------------------

def test_the_return_wait_has_its_own_deadline_and_a_fencing_one_left_over_does_not_end_it():
    ret = act(sm.OUT_OF_SERVICE, sm.RETURN, deadline=NOW - timedelta(hours=1))
    assert ret.to_state == sm.RETURNING and ret.fence_deadline is None
    assert ret.return_deadline == NOW + timedelta(seconds=Policy().servers.returning.wait)
    waiting = incident(sm.RETURNING, deadline=NOW - timedelta(hours=1), return_deadline=ret.return_deadline,
                       proof_id=7)

    def returning(now, outcome=None):
        return facts(sm.RETURNING, inc=waiting, proof=proof_for(), now=now, outcome=outcome)
    effect = decide(returning(NOW)).effect
    assert isinstance(effect, ReturnHost)
    down = Outcome(effect, None, {"service": "down", "waiting": "not up yet"})
    still = decide(returning(NOW, down))
    assert still.to_state is None and still.cause == "returning: not up yet"
    assert decide(returning(ret.return_deadline, down)).to_state == sm.HELD



def act(state, kind, busy=False, **kw):
    return decide(facts(state, inc=incident(state, **kw), action=OperatorAction(kind, "ops", "why"), busy=busy))


@pytest.mark.parametrize("resume, to", [(sm.FENCING, sm.SUSPECTED), (sm.FENCED, sm.FENCED),
                                        (sm.FORCED_DOWN, sm.FORCED_DOWN), (None, sm.SUSPECTED)])
def test_retry_resumes_where_it_stopped_and_a_fencing_wait_starts_again(resume, to):
    decision = act(sm.HELD, sm.RETRY, resume_state=resume)
    assert decision.to_state == to and decision.refused is None and decision.due_at == NOW
    assert decision.resume_state is None and decision.last_error is None  # cleared


@pytest.mark.parametrize("state", [sm.FENCING, sm.OUT_OF_SERVICE, sm.CLOSED])
def test_only_held_or_failed_incidents_can_be_retried(state):
    assert "only held or failed" in act(state, sm.RETRY).refused


def test_close_ends_any_open_incident_but_not_twice_nor_mid_step():
    assert act(sm.OUT_OF_SERVICE, sm.CLOSE).to_state == sm.CLOSED
    assert "already closed" in act(sm.CLOSED, sm.CLOSE).refused
    assert "in the middle of a step" in act(sm.FENCING, sm.CLOSE, busy=True).refused


# ---- intake and early confirmations ------------------------------------------------------

def test_admission_opens_joins_attaches_or_records():
    admit = lambda inc, host="compute-01", hd=True, firing=True: sm.admit(  # noqa: E731
        hd, firing, host, inc, "alertmanager", "fp", "rule").action
    assert admit(None) == sm.OPEN
    assert admit(incident(sm.FENCING)) == sm.JOIN
    assert admit(incident(sm.HELD)) == sm.JOIN
    assert admit(incident(sm.OUT_OF_SERVICE)) == sm.ATTACH  # shown, never fences again
    assert admit(None, host=None) == sm.RECORD
    assert admit(None, hd=False) == sm.RECORD


def test_an_early_confirmation_counts_once_within_its_window_and_not_after_an_incident_ended():
    given, expires = NOW, NOW + timedelta(seconds=600)
    assert sm.early_confirmation_counts(given, expires, NOW + timedelta(seconds=599), None)
    assert not sm.early_confirmation_counts(given, expires, expires, None)
    assert not sm.early_confirmation_counts(given, expires, NOW + timedelta(seconds=10), NOW + timedelta(seconds=1))
    assert sm.early_confirmation_counts(given, expires, NOW + timedelta(seconds=10), NOW - timedelta(seconds=1))


A, B = frozenset({"alertmanager"}), frozenset({"alertmanager", "zabbix"})
NONE = frozenset()


@pytest.mark.parametrize("state", sorted(sm.CANCELLABLE))
def test_a_cancellable_incident_looks_again_at_once_when_its_last_alert_resolves_or_one_fires_again(state):
    assert sm.join_wakes(state, False, A, NONE) == 0
    assert sm.join_wakes(state, False, NONE, A) == 0


def test_a_join_while_alerts_still_fire_changes_nothing_once_fencing():
    assert sm.join_wakes(sm.FENCING, False, A, B) is None
    assert sm.join_wakes(sm.FENCING, False, B, A) is None


def test_a_suspected_incident_looks_again_at_once_when_the_sources_change_else_within_the_settle():
    # a second source joining can satisfy corroboration now, not at the next re-check
    assert sm.join_wakes(sm.SUSPECTED, False, A, B) == 0
    assert sm.join_wakes(sm.SUSPECTED, True, A, NONE) == 0
    # one more alert from a source already firing: only a hold can follow (its labels, a flap)
    assert sm.join_wakes(sm.SUSPECTED, False, A, A) == sm.JOIN_SETTLE
    assert sm.join_wakes(sm.SUSPECTED, False, NONE, NONE) == sm.JOIN_SETTLE


@pytest.mark.parametrize("state", sorted(set(sm.STATES) - sm.CANCELLABLE))
def test_past_fencing_or_with_proof_alerts_change_nothing(state):
    assert sm.join_wakes(state, False, A, NONE) is None
    assert sm.join_wakes(sm.FENCING, True, A, NONE) is None


# ---- escalation over the host's fencing methods ----------------------------------------------

PLAN = (sm.Method("redfish", 30, 1), sm.Method("manual", 300))


def fencing_facts(method=0, attempt=0, deadline=DEADLINE, state=sm.FENCING, now=NOW):
    inc = incident(state, deadline=deadline, fence_method=method, fence_attempt=attempt)
    return dataclasses.replace(facts(state, inc=inc, now=now), plan=PLAN)


def test_the_first_method_is_requested_and_its_own_timeout_sets_the_deadline():
    effect, decision = run(fencing_facts(state=sm.SUSPECTED, deadline=None), lambda e: Outcome(e, "ForceOff sent"))
    assert effect == FenceRequest("compute-01", method="redfish", index=0, attempt=0)
    assert decision.to_state == sm.FENCING and decision.fence_step == (0, 0)
    assert decision.fence_deadline == NOW + timedelta(seconds=30)


def test_a_failed_attempt_is_retried_then_the_next_method_is_tried_then_a_person():
    _, retry = run(fencing_facts(deadline=None), lambda e: Outcome(e, error="401 Unauthorized"))
    assert retry.to_state == sm.FENCING and retry.fence_step == (0, 1) and retry.fence_deadline is None
    assert "redfish (method 1/2, attempt 1/2) failed: 401 Unauthorized; next: redfish" in retry.cause
    _, escalate = run(fencing_facts(attempt=1, deadline=None), lambda e: Outcome(e, error="401 Unauthorized"))
    assert escalate.fence_step == (1, 0) and "next: manual (method 2/2, attempt 1/1)" in escalate.cause
    effect = decide(fencing_facts(method=1, deadline=None)).effect
    assert effect == FenceRequest("compute-01", method="manual", index=1, attempt=0)
    last = decide(fencing_facts(method=1, now=DEADLINE))
    assert last.to_state == sm.HELD and "Nova left untouched (no fencing method left after" in last.cause


def test_a_refusing_method_is_not_retried():
    _, decision = run(fencing_facts(), lambda e: Outcome(e, refused="no BMC address"))
    assert decision.fence_step == (1, 0) and "refused: no BMC address" in decision.cause


def test_a_timed_out_attempt_is_retried_and_the_last_one_holds_as_configured():
    timed_out = decide(fencing_facts(now=DEADLINE))
    assert timed_out.to_state == sm.FENCING and timed_out.fence_step == (0, 1) and timed_out.effect is None
    inc = incident(sm.FENCING, fence_method=1)
    f = dataclasses.replace(facts(sm.FENCING, inc=inc, now=DEADLINE, on_timeout=sm.FAILED), plan=PLAN)
    assert decide(f).to_state == sm.FAILED


def test_a_method_the_config_no_longer_has_holds():
    decision = decide(fencing_facts(method=5))
    assert decision.to_state == sm.HELD and "no fencing method 6" in decision.cause


def test_an_outcome_of_another_attempt_proves_nothing():
    f = fencing_facts(attempt=1)
    stale = FenceCheck("compute-01", method="redfish", index=0, attempt=0)
    found = Evidence(None, None, "compute-01", "redfish", "hostdown-bridge", "off", NOW)
    decision = decide(dataclasses.replace(f, outcome=Outcome(stale, proof=found)))
    assert decision.to_state is None and decision.proof is None
