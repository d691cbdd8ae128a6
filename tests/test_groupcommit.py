"""Group commit: each waiter gets its own result, and only a bad item's waiter fails."""

import threading

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
