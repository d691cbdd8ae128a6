"""Every effect type has exactly one executor, and a dry-run path that changes nothing."""

from datetime import datetime, timezone

import pytest

from bridge.effects import EFFECT_TYPES, Disable, Effect, Evidence, FenceCheck, FenceRequest, ForceDown
from bridge.executor import HANDLERS, Executor
from bridge.fencing import DRIVERS
from bridge.incidents import Facts, Incident
from tests.fakes import FakeNova

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
PROOF = Evidence(7, 1, "compute-01", "manual", "ops", "PDU off", NOW)


def effect_of(effect_type: type[Effect]) -> Effect:
    return effect_type("compute-01", reason="r") if effect_type is Disable else effect_type("compute-01")


def facts(dry_run=False) -> Facts:
    inc = Incident(1, "compute-01", "fenced", dry_run, proof_id=7)
    return Facts(now=NOW, incident=inc, evidence=(PROOF,), proof=PROOF)


class RecordingDriver:
    """A fencing driver that records what it was asked and whether it was told dry-run."""

    name = "recording"

    def __init__(self):
        self.requests: list[bool] = []

    def request(self, effect, incident, *, dry_run):
        from bridge.effects import Outcome
        self.requests.append(dry_run)
        return Outcome(effect, "asked", dry_run=dry_run)

    def check(self, effect, incident, evidence, now):
        from bridge.effects import Outcome
        return Outcome(effect, proof=evidence[0] if evidence else None)


def test_every_effect_type_has_one_executor():
    assert set(HANDLERS) == set(EFFECT_TYPES)
    assert all(issubclass(t, Effect) for t in EFFECT_TYPES)
    assert set(Effect.__subclasses__()) == set(EFFECT_TYPES)  # a new effect must be listed, and so handled


@pytest.mark.parametrize("effect_type", EFFECT_TYPES, ids=lambda t: t.__name__)
def test_every_effect_has_a_dry_run_path_that_changes_nothing(effect_type):
    nova, driver = FakeNova(["compute-01"]), RecordingDriver()
    for executor, f in ((Executor(dry_run=True, nova=nova, fencing=driver), facts()),
                        (Executor(dry_run=False, nova=nova, fencing=driver), facts(dry_run=True)),
                        (Executor(dry_run=False, nova=None, fencing=driver), facts())):
        outcome = executor.run(effect_of(effect_type), f)
        assert outcome.error is None and outcome.effect == effect_of(effect_type)
        if effect_type.mutates:
            assert outcome.dry_run or driver.requests[-1] is True
    assert nova.calls == [] and all(driver.requests)
    svc = nova.services["compute-01"]
    assert not svc["forced_down"] and svc["status"] == "enabled"


def test_live_effects_reach_their_adapter():
    nova, driver = FakeNova(["compute-01"]), RecordingDriver()
    executor = Executor(dry_run=False, nova=nova, fencing=driver)
    assert executor.run(FenceRequest("compute-01"), facts()).note == "asked" and driver.requests == [False]
    assert executor.run(FenceCheck("compute-01"), facts()).proof == PROOF
    assert executor.run(ForceDown("compute-01"), facts()).note.startswith("nova force_down done")
    assert executor.run(Disable("compute-01", reason="r"), facts()).note.startswith("nova disable done")
    assert nova.calls == [("force_down", "compute-01"), ("disable", "compute-01")]


def test_an_adapter_failure_is_an_outcome_not_an_exception():
    from bridge.nova import NovaError
    nova = FakeNova(["compute-01"])
    nova.fail_next("force_down", NovaError("nova force down compute-01 failed: 500", [{"attempt": 1}]))
    outcome = Executor(dry_run=False, nova=nova, fencing=RecordingDriver()).run(ForceDown("compute-01"), facts())
    assert "500" in outcome.error and outcome.detail == {"attempts": [{"attempt": 1}]}


def test_the_manual_driver_quotes_the_host_in_its_hint_and_proves_only_with_this_incidents_confirmation():
    manual = DRIVERS["manual"]()
    hostile = Incident(1, "x;rm -rf ~", "suspected", False)
    hint = manual.request(FenceRequest(hostile.host), hostile, dry_run=False).detail["cli"]
    assert "fence confirm 'x;rm -rf ~' --reason" in hint
    inc = Incident(1, "compute-01", "fencing", False)
    other = Evidence(8, 2, "compute-01", "manual", "ops", "old", NOW)
    assert manual.check(FenceCheck("compute-01"), inc, (other,), NOW).proof is None
    assert manual.check(FenceCheck("compute-01"), inc, (other, PROOF), NOW).proof == PROOF
