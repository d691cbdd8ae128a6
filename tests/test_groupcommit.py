"""Group commit: each waiter gets its own result, and only a bad item's waiter fails."""

import dataclasses
import threading
from datetime import datetime, timezone

from bridge.rules import UNMATCHED, Mapping
from bridge.signals import FIRING, Signal
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
