"""Intake keeps each incident's alert counts as signals come in, and wakes the engine only when
a signal can change what decide() says: at once, or within JOIN_SETTLE when it can only add a hold."""

import itertools
import threading
from datetime import timedelta

import sqlalchemy as sa

from bridge import incidents as sm
from bridge.engine import Engine
from bridge.store.database import create_engine
from bridge.store.queries import Store
from bridge.store.tables import incidents, signals
from tests.test_engine import alert


def recount(store, incident_id: int) -> tuple[dict, dict]:
    """Each alert once, by its latest status, per source: what the counts must say."""
    latest = {}
    with store.engine.connect() as conn:
        for row in conn.execute(sa.select(signals.c.source, signals.c.fingerprint, signals.c.status)
                                .where(signals.c.incident_id == incident_id).order_by(signals.c.id)):
            latest[row.source, row.fingerprint] = row.status
    firing, resolved = {}, {}
    for (source, _), status in latest.items():
        counts = firing if status == "firing" else resolved
        counts[source] = counts.get(source, 0) + 1
    return firing, resolved


def test_counts_follow_each_alerts_latest_status_whatever_order_signals_are_taken_in(bridge):
    reports = [alert(fingerprint="a"), alert(fingerprint="b"), alert(fingerprint="a", status="resolved"),
               alert(fingerprint="b", status="resolved"), alert(fingerprint="a", starts="2026-11-24T20:00:00Z")]
    ids = [bridge.post_alert(body).get_json()["signals"][0]["id"] for body in reports]
    store = bridge.store
    # the first report opens the incident; the rest come in every order, several in one batch
    for order in itertools.islice(itertools.permutations(ids[1:]), 0, None, 5):
        with store.engine.begin() as conn:
            conn.exec_driver_sql("UPDATE signals SET processed_at = NULL, incident_id = NULL")
            conn.exec_driver_sql("DELETE FROM timeline")
            conn.exec_driver_sql("DELETE FROM incidents")
        store.intake(ids[0], "compute-01", "test", bridge.clock(), dry_run=True, confirmation_window=600)
        store.intake_many([(order[0], "compute-01", "test")], bridge.clock(), dry_run=True, confirmation_window=600)
        store.intake_many([(i, "compute-01", "test") for i in order[1:]], bridge.clock(), dry_run=True,
                          confirmation_window=600)
        [inc] = store.list_incidents()
        snap = store.snapshot(inc["id"], bridge.clock())
        assert (dict(snap.signals.firing), dict(snap.signals.resolved)) == recount(store, inc["id"]), order
        if list(order) == sorted(order):  # in arrival order: a fires again, b is resolved
            assert (snap.signals.firing, snap.signals.resolved) == ({"alertmanager": 1}, {"alertmanager": 1})


def test_a_join_while_other_alerts_fire_does_not_wake_the_engine_but_the_last_resolve_does(bridge):
    bridge.post_alert(alert(fingerprint="a"))
    bridge.settle()
    opened = bridge.only_incident()
    assert opened["state"] == sm.FENCING
    bridge.post_alert(alert(fingerprint="b"))
    bridge.engine.intake_pending()
    joined = bridge.only_incident()
    assert "alert joined: alertmanager b (compute-host-down)" in [t["cause"] for t in joined["timeline"]]
    assert (joined["nudges"], joined["due_at"]) == (opened["nudges"], opened["due_at"])
    bridge.post_alert(alert(fingerprint="a", status="resolved"))
    bridge.engine.intake_pending()
    assert bridge.only_incident()["nudges"] == opened["nudges"]  # b still fires
    bridge.post_alert(alert(fingerprint="b", status="resolved"))
    bridge.engine.intake_pending()
    last = bridge.only_incident()
    assert last["nudges"] == opened["nudges"] + 1 and last["due_at"] == bridge.clock()
    bridge.settle()
    assert bridge.only_incident()["state"] == sm.CANCELLED


def test_a_signal_that_arrives_while_signals_are_taken_in_makes_that_thread_go_round_again(bridge, monkeypatch):
    """Its webhook wakes no other thread (all of them would poll at once in a storm): the thread
    taking signals in reads it on its next round."""
    read = bridge.store.unprocessed_signals

    def read_then_one_arrives(limit):
        found = read(limit)
        monkeypatch.setattr(bridge.store, "unprocessed_signals", read)
        assert bridge.post_alert(alert(fingerprint="late")).status_code == 202  # during the round
        bridge.engine.wake()  # as its webhook does (this app has no engine to wake)
        return found

    monkeypatch.setattr(bridge.store, "unprocessed_signals", read_then_one_arrives)
    assert bridge.engine.intake_pending() is True  # nothing taken, but one came: go round again
    assert bridge.engine.intake_pending() is True  # takes it in
    assert bridge.engine.intake_pending() is False
    assert bridge.only_incident()["host"] == "compute-01"


def waiting(store, incident_id: int, until) -> None:
    """The incident as a step left it: waiting (on min_duration, say) until `until`."""
    with store.engine.begin() as conn:
        conn.execute(incidents.update().where(incidents.c.id == incident_id).values(due_at=until))


def test_a_waiting_suspected_incident_looks_again_within_the_settle_unless_its_sources_change(bridge):
    store, now = bridge.store, bridge.clock()
    ids = [bridge.post_alert(alert(fingerprint=fp)).get_json()["signals"][0]["id"] for fp in "abc"]
    store.intake_many([(ids[0], "compute-01", "test")], now, dry_run=True, confirmation_window=600)
    opened = bridge.only_incident()
    waiting(store, opened["id"], now + timedelta(seconds=60))
    # one more alert from a source already firing: a step within JOIN_SETTLE, no nudge
    store.intake_many([(ids[1], "compute-01", "test")], now, dry_run=True, confirmation_window=600)
    joined = bridge.only_incident()
    assert (joined["nudges"], joined["due_at"]) == (opened["nudges"], now + timedelta(seconds=sm.JOIN_SETTLE))
    # a source not firing before (corroboration may pass now): at once
    with store.engine.begin() as conn:
        conn.execute(signals.update().where(signals.c.id == ids[2]).values(source="zabbix"))
    later = now + timedelta(seconds=1)
    store.intake_many([(ids[2], "compute-01", "test")], later, dry_run=True, confirmation_window=600)
    corroborated = bridge.only_incident()
    assert (corroborated["nudges"], corroborated["due_at"]) == (opened["nudges"] + 1, later)
    # a due time already sooner than the settle is kept
    waiting(store, opened["id"], now + timedelta(seconds=2))
    more = bridge.post_alert(alert(fingerprint="d")).get_json()["signals"][0]["id"]
    store.intake_many([(more, "compute-01", "test")], now, dry_run=True, confirmation_window=600)
    assert bridge.only_incident()["due_at"] == now + timedelta(seconds=2)


def test_an_older_report_taken_in_late_wakes_a_suspected_incident(bridge):
    """Its count stays with the newer report, but the gates count every fire/resolve report
    (flapping): the suspected incident looks again within the settle."""
    first = bridge.post_alert(alert(fingerprint="a")).get_json()["signals"][0]["id"]
    older = bridge.post_alert(alert(fingerprint="b")).get_json()["signals"][0]["id"]
    newer = bridge.post_alert(alert(fingerprint="b", starts="2026-11-24T20:00:00Z")).get_json()["signals"][0]["id"]
    store, now = bridge.store, bridge.clock()
    store.intake_many([(first, "compute-01", "test"), (newer, "compute-01", "test")], now, dry_run=True,
                      confirmation_window=600)
    before = bridge.only_incident()
    assert before["state"] == sm.SUSPECTED
    waiting(store, before["id"], now + timedelta(seconds=60))
    store.intake_many([(older, "compute-01", "test")], now, dry_run=True, confirmation_window=600)
    after = bridge.only_incident()
    assert after["due_at"] == now + timedelta(seconds=sm.JOIN_SETTLE)
    snap = store.snapshot(after["id"], now)
    assert (snap.signals.firing, snap.signals.resolved) == ({"alertmanager": 2}, {})  # a and b, once each


def test_two_workers_take_signals_in_by_turns_and_never_read_the_same_one(bridge):
    """A second worker's engine (its own Store on the same file) waits for the intake turn, then
    reads what the first left: no signal is read twice, no claim comes back empty."""
    ids = {bridge.post_alert(alert(host=f"compute-0{n}")).get_json()["signals"][0]["id"] for n in (1, 2, 3)}
    second_store = Store(create_engine(bridge.config["database"]["url"]))
    second = Engine(bridge.config, second_store, None, clock=bridge.clock)
    read = {"first": [], "second": []}
    for name, store in (("first", bridge.store), ("second", second_store)):
        def reading(limit, unprocessed=store.unprocessed_signals, name=name):
            found = unprocessed(limit)
            read[name] += [s["id"] for s in found]
            return found
        store.unprocessed_signals = reading
    inside, go_on = threading.Event(), threading.Event()
    resolve = bridge.engine.inventory.resolve

    def slow_resolve(candidate):  # the first worker holds its turn here
        inside.set()
        assert go_on.wait(10)
        return resolve(candidate)

    bridge.engine.inventory.resolve = slow_resolve
    first = threading.Thread(target=bridge.engine.intake_pending)
    first.start()
    assert inside.wait(10)
    waiting = threading.Thread(target=second.intake_pending)
    waiting.start()
    waiting.join(0.3)
    assert waiting.is_alive() and read["second"] == []  # queued for the turn, nothing read yet
    late = bridge.post_alert(alert(host="compute-04")).get_json()["signals"][0]["id"]
    go_on.set()
    first.join(10)
    waiting.join(10)
    assert sorted(read["first"]) == sorted(ids) and read["second"] == [late]
    assert {i["host"] for i in bridge.store.list_incidents()} == {"compute-01", "compute-02", "compute-03",
                                                                  "compute-04"}
