"""Group commit: each waiter gets its own result, and only a bad item's waiter fails."""

import dataclasses
import threading
from datetime import datetime, timezone

from bridge.rules import UNMATCHED, Mapping
from bridge.signals import FIRING, Signal
from bridge.store import receipts
from bridge.store.groupcommit import GroupCommit
from tests.test_leases import at_once, errors


def test_items_committed_together_each_get_their_own_result_and_a_bad_one_fails_alone():
    groups, gate = [], threading.Event()

    def run(items):
        gate.wait()  # let the others queue up behind the first group
        if "bad" in items:
            raise ValueError("bad item")
        groups.append(list(items))
        return [item.upper() for item in items]

    writer = GroupCommit(run)
    items = ["bad"] + [f"item{n}" for n in range(15)]
    threading.Timer(0.2, gate.set).start()
    results = at_once(*(lambda i=i: writer.submit(i) for i in items))
    assert [str(e) for e in errors(results)] == ["bad item"]
    assert results[1:] == [i.upper() for i in items[1:]]
    assert sorted(i for g in groups for i in g) == sorted(items[1:])  # each committed once


def test_an_alert_twice_in_one_group_is_stored_once_and_then_counted_as_a_repeat(bridge):
    """The group's rows go in one statement per round: an upsert (PostgreSQL's) takes a row once."""
    at = datetime(2026, 11, 24, 19, 17, tzinfo=timezone.utc)
    alert = Signal("alertmanager", "fp-1", FIRING, {"alertname": "HostDown"}, {}, at)
    other = dataclasses.replace(alert, fingerprint="fp-2")
    unmatched = Mapping(None, UNMATCHED, None, "no rule matches")
    first, again = bridge.store._store_groups([
        ([(alert, unmatched), (other, unmatched)], at),
        ([(alert, unmatched), (alert, unmatched)], at),
    ])
    assert [r["fingerprint"] for r in first + again] == ["fp-1", "fp-2", "fp-1", "fp-1"]
    assert [r["duplicate"] for r in first + again] == [False, False, True, True]
    assert first[0]["id"] == again[0]["id"] == again[1]["id"] != first[1]["id"]
    assert {s["fingerprint"]: s["repeats"] for s in bridge.store.list_signals()} == {"fp-1": 2, "fp-2": 0}


def test_stored_signals_read_back_as_sent_even_over_one_statements_rows(bridge):
    """The receipts' upsert (bridge/store/receipts.py) converts each value as its column type
    does: readers get the same labels, times (aware, UTC, microseconds kept), raw body and
    mapping back. A group larger than one statement's rows goes in several statements."""
    at = datetime(2026, 11, 24, 19, 17, 7, 392108, tzinfo=timezone.utc)
    now = datetime(2026, 11, 26, 9, 0, 0, 1, tzinfo=timezone.utc)
    labels = {"alertname": "HostDown", "openstack_host": "compute-01", "note": "naïve \u2603 \"quoted\"\n"}
    mapping = Mapping("compute-host-down", "host_down", "compute-01", "matched rule compute-host-down")
    alerts = [Signal("alertmanager", f"fp-{n}", FIRING, labels, {"summary": "down"}, at,
                     at.replace(year=2027) if n % 2 else None, {"n": n, "nested": [1, {"a": None}]})
              for n in range(receipts.ROWS_PER_STATEMENT + 7)]
    [stored] = bridge.store._store_groups([([(a, mapping) for a in alerts], now)])
    assert len({s["id"] for s in stored}) == len(alerts) and not any(s["duplicate"] for s in stored)
    by_fingerprint = {s["fingerprint"]: s for s in bridge.store.list_signals(limit=10_000)}
    for alert in (alerts[0], alerts[1], alerts[-1]):
        row = by_fingerprint[alert.fingerprint]
        assert (row["labels"], row["annotations"], row["raw"]) == (alert.labels, alert.annotations, alert.raw)
        assert (row["starts_at"], row["ends_at"], row["received_at"], row["last_seen_at"]) == (
            alert.starts_at, alert.ends_at, now, now)
        assert (row["rule"], row["kind"], row["candidate_host"], row["note"], row["repeats"]) == (
            mapping.rule, mapping.kind, mapping.candidate, mapping.note, 0)
        assert row["dedup_key"] == alert.dedup_key and row["processed_at"] is None
    later = datetime(2026, 11, 26, 9, 5, tzinfo=timezone.utc)
    [again] = bridge.store._store_groups([([(alerts[1], mapping)], later)])
    assert again[0]["id"] == by_fingerprint["fp-1"]["id"] and again[0]["duplicate"]
    row = next(s for s in bridge.store.list_signals(limit=10_000) if s["fingerprint"] == "fp-1")
    assert (row["repeats"], row["received_at"], row["last_seen_at"]) == (1, now, later)
