"""Several workers on one database: a step runs once, a signal is taken in once."""

import threading
from datetime import timedelta

from bridge import incidents as sm
from bridge.engine import Engine
from bridge.incidents import Decision
from tests.conftest import joined
from tests.test_engine import alert


def second_engine(bridge):
    return Engine(bridge.config, bridge.store, bridge.nova, clock=bridge.clock)


def at_once(*actions) -> list:
    """Each action in its own thread, all released together; what each returned or raised."""
    barrier, results = threading.Barrier(len(actions)), [None] * len(actions)

    def run(i):
        barrier.wait()
        try:
            results[i] = actions[i]()
        except Exception as exc:  # noqa: BLE001 - the caller asserts on it
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(actions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def errors(results: list) -> list[Exception]:
    return [r for r in results if isinstance(r, Exception)]


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
    assert errors(at_once(*(lambda e=e: [e.run_once() for _ in range(30)] for e in engines))) == []
    incidents = live_bridge.store.list_incidents()
    assert sorted(i["host"] for i in incidents) == ["compute-01", "compute-03"]
    assert all(i["state"] == sm.OUT_OF_SERVICE for i in incidents)
    assert sorted(fake_nova.calls) == sorted([("force_down", "compute-01"), ("disable", "compute-01"),
                                              ("force_down", "compute-03"), ("disable", "compute-03")])
    for inc in incidents:
        detail = live_bridge.store.get_incident(inc["id"])
        moves = [t["to_state"] for t in detail["timeline"] if t["from_state"] != t["to_state"]]
        assert moves == [sm.SUSPECTED, sm.FENCING, sm.FENCED, sm.FORCED_DOWN, sm.NOVA_DOWN, sm.OUT_OF_SERVICE]
        assert joined(detail) == (2 if inc["host"] == "compute-01" else 0)


def test_workers_taking_in_signals_for_one_host_at_once_open_one_incident(bridge):
    # PostgreSQL (READ COMMITTED): two workers taking in different signals can both find no open
    # incident for the host and both insert one; the partial unique index refuses the second.
    # Engines take signals in id order, but two webhook requests can commit theirs out of id
    # order, so a worker may start at a later one: each thread here starts at a different one.
    for n in range(16):
        bridge.post_alert(alert(host="compute-01", fingerprint=f"fp{n}"))
    ids = [s["id"] for s in bridge.store.unprocessed_signals()]

    def take_in(first):
        return [bridge.store.intake(signal_id, "compute-01", "test", bridge.clock(), dry_run=True,
                                    confirmation_window=600) for signal_id in ids[first:] + ids[:first]]

    assert errors(at_once(*(lambda k=k: take_in(k) for k in range(len(ids))))) == []
    inc = bridge.only_incident()
    assert sorted(s["id"] for s in bridge.signals_of(inc["id"])) == sorted(ids)  # every signal, each once
    # one burst: one timeline entry, and no join lost when workers counted at once
    [burst] = [t for t in inc["timeline"] if t["detail"].get("burst") == "joined"]
    assert burst["detail"]["count"] == len(ids) - 1 == joined(inc)
    assert bridge.store.unprocessed_signals() == []


def test_a_confirmation_at_the_moment_the_incident_opens_is_not_lost(bridge):
    # PostgreSQL: a confirmation that finds no open incident is kept for later, while the intake
    # opening the incident looks for earlier confirmations; neither may miss the other
    hosts = [f"compute-{n:02d}" for n in range(12)]
    for host in hosts:
        bridge.post_alert(alert(host=host))
    signal_of = {s["candidate_host"]: s["id"] for s in bridge.store.unprocessed_signals()}
    store, now = bridge.store, bridge.clock()
    assert errors(at_once(*(action for host in hosts for action in (
        lambda h=host: store.intake(signal_of[h], h, "test", now, dry_run=True, confirmation_window=600),
        lambda h=host: store.add_confirmation(h, "ops", "PDU off", now, 600, {}))))) == []
    incidents = store.list_incidents()
    assert len(incidents) == len(hosts)
    for inc in incidents:
        assert len(store.get_incident(inc["id"])["evidence"]) == 1, inc["host"]


def test_two_operators_closing_an_incident_at_once_close_it_once(bridge):
    bridge.post_alert(alert())
    bridge.settle()
    incident_id = bridge.only_incident()["id"]
    results = at_once(*[lambda: bridge.store.operator_action(incident_id, "close", "ops", "done", bridge.clock())] * 8)
    assert sorted(type(r).__name__ for r in results) == ["ValueError"] * 7 + ["dict"]
    assert sum("close by ops" in t["cause"] for t in bridge.only_incident()["timeline"]) == 1


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


def test_an_operator_cannot_close_an_incident_in_the_middle_of_a_step(live_bridge):
    # the step's outcome (a Nova call already made, perhaps) must land on the timeline first
    live_bridge.post_alert(alert())
    live_bridge.engine.intake_pending()
    store, now = live_bridge.store, live_bridge.clock()
    [incident_id] = store.due_incidents(now)
    claim = store.claim(incident_id, "worker-a", now, 120)
    close = live_bridge.admin("POST", f"/v1/incidents/{incident_id}/close", json={"reason": "false alarm"})
    assert close.status_code == 409 and "in the middle of a step" in close.json["message"]
    assert store.commit(claim, "worker-a", Decision(sm.FENCING, "fencing requested", due_at=now), now) is True
    close = live_bridge.admin("POST", f"/v1/incidents/{incident_id}/close", json={"reason": "false alarm"})
    assert close.status_code == 200 and close.json["state"] == sm.CLOSED
