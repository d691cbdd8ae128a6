"""Retention (bridge/store/retention.py): old signals and long-ended incidents go, in batches;
nothing an open incident needs, no signal not yet taken in, no confirmation inside its window,
never the inventory. Runs on SQLite and (-m postgres) PostgreSQL."""

from datetime import datetime, timezone

import sqlalchemy as sa
from click.testing import CliRunner

from bridge import incidents as sm
from bridge.cli import main
from bridge.engine import Engine
from bridge.store.retention import Retention, prune
from bridge.store.tables import compute_hosts, evidence, incidents, server_actions, signals, timeline
from tests.harness.bridge_process import wait_until
from tests.test_engine import alert
from tests.test_leases import at_once, errors

DAY = 24 * 3600
POLICY = Retention(signals_days=30, closed_incidents_days=90, batch=2)  # small batches: many of them


def rows(bridge) -> dict[str, set]:
    """Every row id per table, and the inventory."""
    with bridge.store.engine.connect() as conn:
        out = {t.name: set(conn.execute(sa.select(t.c.id)).scalars()) 
               for t in (signals, incidents, timeline, evidence, server_actions)}
        out["compute_hosts"] = set(conn.execute(sa.select(compute_hosts.c.host)).scalars())
    return out


def of_incident(bridge, incident_id: int) -> dict[str, set]:
    with bridge.store.engine.connect() as conn:
        return {t.name: set(conn.execute(sa.select(t.c.id).where(t.c.incident_id == incident_id)).scalars())
                for t in (signals, timeline, evidence)}


def close(bridge, incident_id: int) -> None:
    assert bridge.admin("POST", f"/v1/incidents/{incident_id}/close", json={"reason": "done"}).status_code == 200


def open_incident(bridge, host: str, **kwargs) -> int:
    bridge.post_alert(alert(host=host, **kwargs))
    bridge.settle()
    [inc] = bridge.store.list_incidents(host=host, open_only=True)
    return inc["id"]


def history(bridge) -> dict:
    """115 days of it; the names say what retention must do with each."""
    bridge.store.replace_inventory([{"host": f"compute-0{n}", "service_id": str(n)} for n in range(1, 10)],
                                   bridge.clock())
    ended_long_ago = open_incident(bridge, "compute-02")
    bridge.post_alert(alert(host="compute-02", fingerprint="again"))  # joins: one more timeline entry
    bridge.settle()
    bridge.confirm("compute-02")
    close(bridge, ended_long_ago)
    still_open = open_incident(bridge, "compute-01")
    bridge.confirm("compute-01")
    bridge.settle()
    bridge.confirm("compute-08")  # no incident: counts for 600 s, then never
    bridge.post_alert(alert(host="", fingerprint="unmapped-old"))
    bridge.post_alert(alert(host="", fingerprint="unmapped-repeated"))
    bridge.settle()
    bridge.clock.advance(80 * DAY)
    ended_lately = open_incident(bridge, "compute-03")
    bridge.post_alert(alert(host="compute-05"))  # not taken in (yet): kept whatever its age
    bridge.clock.advance(5 * DAY)
    close(bridge, ended_lately)
    bridge.clock.advance(20 * DAY)
    bridge.post_alert(alert(host="", fingerprint="unmapped-new"))
    bridge.post_alert(alert(host="", fingerprint="unmapped-repeated"))  # a sender's repeat: seen now
    bridge.clock.advance(10 * DAY)
    waiting = bridge.confirm("compute-09").json["evidence_id"]  # inside its window
    return {"ended_long_ago": ended_long_ago, "still_open": still_open, "ended_lately": ended_lately,
            "waiting": waiting}


def test_prune_deletes_what_is_old_and_nothing_an_open_incident_needs(bridge):
    made = history(bridge)
    open_before = of_incident(bridge, made["still_open"])
    lately_before = of_incident(bridge, made["ended_lately"])
    gone_before = of_incident(bridge, made["ended_long_ago"])
    before = rows(bridge)
    due = prune(bridge.store.engine, POLICY, bridge.clock(), dry_run=True)
    assert rows(bridge) == before  # dry-run deletes nothing

    done = prune(bridge.store.engine, POLICY, bridge.clock())
    after = rows(bridge)
    assert done == due == {kind: len(before[kind] - after[kind]) for kind in done}
    # the open incident, whole, although its first signal and timeline are 115 days old
    assert of_incident(bridge, made["still_open"]) == open_before and open_before["evidence"]
    assert bridge.store.get_incident(made["still_open"])["state"] == sm.OUT_OF_SERVICE
    # ended 30 days ago: kept with its timeline, its 35-day-old signals gone
    assert of_incident(bridge, made["ended_lately"]) == {**lately_before, "signals": set()}
    # ended 115 days ago: gone with everything it had
    assert made["ended_long_ago"] not in after["incidents"]
    assert all(not (gone_before[t] & after[t]) for t in gone_before) and all(gone_before.values())
    assert done["incidents"] == 1 and done["timeline"] == len(gone_before["timeline"])
    # the signal log: old and taken in gone; recent, or old and never taken in, kept
    with bridge.store.engine.connect() as conn:
        kept = {(s.fingerprint, s.processed_at is None) for s in conn.execute(
            sa.select(signals).where(signals.c.incident_id.is_(None)))}
        confirmations = set(conn.execute(sa.select(evidence.c.id).where(evidence.c.incident_id.is_(None))).scalars())
    assert kept == {("unmapped-new", True), ("fp-compute-05", True), ("unmapped-repeated", False)}
    assert confirmations == {made["waiting"]}  # compute-08's, long expired, is gone
    assert after["compute_hosts"] == before["compute_hosts"] and len(after["compute_hosts"]) == 9
    # nothing more is due
    assert prune(bridge.store.engine, POLICY, bridge.clock()) == dict.fromkeys(done, 0)


def test_workers_pruning_at_once_delete_each_row_once(bridge):
    made = history(bridge)
    due = prune(bridge.store.engine, POLICY, bridge.clock(), dry_run=True)
    results = at_once(*[lambda: prune(bridge.store.engine, POLICY, bridge.clock())] * 4)
    assert errors(results) == []
    assert {kind: sum(r[kind] for r in results) for kind in due} == due
    assert made["still_open"] in rows(bridge)["incidents"]


def test_the_engine_prunes_on_its_own(make_bridge):
    bridge = make_bridge(retention={"interval": 3600})
    made = history(bridge)
    engine = Engine(bridge.config, bridge.store, None, clock=bridge.clock)
    engine.start()
    try:
        wait_until("the engine's retention run", lambda: made["ended_long_ago"] not in rows(bridge)["incidents"])
    finally:
        engine.stop()
    assert made["still_open"] in rows(bridge)["incidents"]


def test_db_prune_command(bridge, tmp_path):
    made = history(bridge)
    config = tmp_path / "bridge.yaml"
    config.write_text(f"database: {{url: '{bridge.config['database']['url']}'}}\n")
    # the command's clock is the real one
    due = prune(bridge.store.engine, Retention.from_config(bridge.config), datetime.now(timezone.utc), dry_run=True)
    counts = ", ".join(f"{n} {kind}" for kind, n in due.items())
    before = rows(bridge)
    dry = CliRunner().invoke(main, ["db", "prune", "--dry-run", "--config", str(config)])
    assert dry.exit_code == 0 and dry.output.startswith(f"due (dry-run, nothing deleted): {counts} "), dry.output
    assert rows(bridge) == before
    real = CliRunner().invoke(main, ["db", "prune", "--config", str(config)])
    assert real.exit_code == 0 and real.output.startswith(f"deleted: {counts} "), real.output
    after = rows(bridge)
    assert {kind: len(before[kind] - after[kind]) for kind in due} == due
    assert made["still_open"] in after["incidents"] and after["compute_hosts"] == before["compute_hosts"]
