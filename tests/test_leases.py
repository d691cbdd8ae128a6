"""Several workers on one database: a step runs once, a signal is taken in once."""

import threading
from datetime import timedelta

from bridge import incidents as sm
from bridge.engine import Engine
from bridge.incidents import Decision
from tests.test_engine import alert


def second_engine(bridge):
    return Engine(bridge.config, bridge.store, bridge.nova, clock=bridge.clock)


def test_a_claimed_incident_cannot_be_claimed_again_until_the_lease_expires(live_bridge):
    live_bridge.post_alert(alert())
    live_bridge.engine.intake_pending()
    [incident_id] = live_bridge.store.due_incidents(live_bridge.clock())
    store, now = live_bridge.store, live_bridge.clock()
    first = store.claim(incident_id, "worker-a", now, 120)
    assert first is not None
    assert store.claim(incident_id, "worker-b", now, 120) is None
    assert store.claim(incident_id, "worker-b", now + timedelta(seconds=119), 120) is None
    later = now + timedelta(seconds=121)
    second = store.claim(incident_id, "worker-b", later, 120)
    assert second is not None and second.epoch == first.epoch + 1
    # worker-a comes back from a long pause: its commit must not land
    moved = Decision(sm.FENCING, "from worker a", due_at=later)
    assert store.commit(first, "worker-a", moved, later) is False
    assert store.get_incident(incident_id)["state"] == sm.SUSPECTED
    assert store.commit(second, "worker-b", moved, later) is True
    assert store.get_incident(incident_id)["state"] == sm.FENCING


def test_an_event_during_a_step_makes_the_incident_due_at_once(live_bridge):
    live_bridge.post_alert(alert())
    live_bridge.settle()
    [incident_id] = [i["id"] for i in live_bridge.store.list_incidents()]
    store, now = live_bridge.store, live_bridge.clock()
    with store.engine.begin() as conn:  # make it due again
        conn.exec_driver_sql("UPDATE incidents SET due_at = opened_at")
    claim = store.claim(incident_id, "worker-a", now, 120)
    live_bridge.confirm("compute-01")  # arrives while worker-a decides "keep waiting"
    store.commit(claim, "worker-a", Decision(None, "waiting", due_at=now + timedelta(seconds=300)), now)
    assert store.get_incident(incident_id)["due_at"] <= now  # not pushed back to the deadline


def test_many_workers_take_each_signal_in_once_and_run_each_step_once(live_bridge, fake_nova):
    for n in range(1, 4):
        live_bridge.post_alert(alert(host="compute-01", fingerprint=f"fp{n}"))
        live_bridge.confirm("compute-03") if n == 1 else None
    live_bridge.post_alert(alert(host="compute-03"))
    live_bridge.confirm("compute-01")
    engines = [live_bridge.engine] + [second_engine(live_bridge) for _ in range(5)]
    barrier = threading.Barrier(len(engines))
    errors = []

    def run(engine):
        barrier.wait()
        try:
            for _ in range(30):
                engine.run_once()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    incidents = live_bridge.store.list_incidents()
    assert sorted(i["host"] for i in incidents) == ["compute-01", "compute-03"]
    assert all(i["state"] == sm.DONE for i in incidents)
    assert sorted(fake_nova.calls) == sorted([("force_down", "compute-01"), ("disable", "compute-01"),
                                              ("force_down", "compute-03"), ("disable", "compute-03")])
    for inc in incidents:
        detail = live_bridge.store.get_incident(inc["id"])
        moves = [t["to_state"] for t in detail["timeline"] if t["from_state"] != t["to_state"]]
        assert moves == [sm.SUSPECTED, sm.FENCING, sm.FENCED, sm.FORCED_DOWN, sm.NOVA_DOWN, sm.DONE]
        assert sum("alert joined" in t["cause"] for t in detail["timeline"]) == (2 if inc["host"] == "compute-01" else 0)


def test_an_incident_leased_by_another_worker_is_not_due_before_its_lease_ends(live_bridge):
    # otherwise an idle worker would spin while another one waits on Nova
    live_bridge.post_alert(alert())
    live_bridge.engine.intake_pending()
    store, now = live_bridge.store, live_bridge.clock()
    [incident_id] = store.due_incidents(now)
    assert store.next_due(now) <= now
    store.claim(incident_id, "worker-a", now, 120)
    assert store.next_due(now) == now + timedelta(seconds=120)
    assert store.next_due(now + timedelta(seconds=121)) <= now  # lease expired: due again
