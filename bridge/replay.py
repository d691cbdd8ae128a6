"""Replay: a recorded signal history through the real engine and decision core, offline.

The history is the bridge's own signal log (`hostdown-bridge signals export`: one stored
signal per line) or captured webhook bodies (`{"source", "received_at", "body"}` per line).
Each is taken in at the time it was received, on a simulated clock, by an engine on a
throwaway SQLite database under the configuration given, with no cloud and in shadow mode:
nothing is fenced, nothing is called. What comes out is what the gates and the lifecycle
would have done, host by host and gate by gate.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

import sqlalchemy as sa

from bridge.config import Config, validate
from bridge.engine import Engine
from bridge.rules import classify
from bridge.signals import Signal
from bridge.sources import parse
from bridge.store import Store, create_engine, upgrade
from bridge.store.tables import signals

# fields of an exported signal line
EXPORTED = ("source", "fingerprint", "status", "labels", "annotations", "starts_at", "ends_at", "received_at",
            "last_seen_at", "repeats")
# after the last signal, the clock runs on this long so that waits and timeouts play out
TAIL = timedelta(hours=1)


class HistoryError(ValueError):
    """A line of the history that is neither an exported signal nor a captured body."""


def _when(text: str | None) -> datetime | None:
    if not text:
        return None
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def export(store: Store, since: datetime | None = None) -> Iterator[dict[str, Any]]:
    """The signal log, oldest first, one dict per stored signal (what replay reads back)."""
    query = sa.select(*(signals.c[name] for name in EXPORTED), signals.c.raw).order_by(signals.c.id)
    if since is not None:
        query = query.where(signals.c.received_at >= since)
    with store.reader.connect() as conn:
        for row in conn.execute(query.execution_options(yield_per=1000)):
            item = dict(row._mapping)
            for key in ("starts_at", "ends_at", "received_at", "last_seen_at"):
                item[key] = _iso(item[key])
            yield item


@dataclass(frozen=True)
class Arrival:
    at: datetime
    signals: tuple[Signal, ...]


def read_history(lines: Iterable[str]) -> list[Arrival]:
    """Arrivals in time order. HistoryError names the line and what is wrong with it."""
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            at = _when(item["received_at"])
            if "body" in item:
                body = item["body"] if isinstance(item["body"], str) else json.dumps(item["body"])
                found = tuple(parse(item["source"], body.encode()))
            else:
                found = (Signal(item["source"], item["fingerprint"], item["status"], item["labels"],
                                item.get("annotations") or {}, _when(item.get("starts_at")),
                                _when(item.get("ends_at")), item.get("raw") or {}),)
        except (ValueError, KeyError, TypeError) as exc:
            raise HistoryError(f"line {n}: {type(exc).__name__}: {exc}") from None
        if at is None:
            raise HistoryError(f"line {n}: received_at is required")
        out.append(Arrival(at, found))
    return sorted(out, key=lambda a: a.at)


class _Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Result:
    incidents: list[dict]  # each with its timeline
    gates: list[tuple]  # (at, incident_id, gate, hold|wait, cause), in order
    signals: int = 0


def replay(raw_config: dict, history: list[Arrival], hosts: list[tuple[str, ...]] | None = None,
           tail: timedelta = TAIL) -> Result:
    """Run `history` under `raw_config` (a parsed YAML document) and return what happened.
    `hosts`: Nova's compute hosts as they were, each (host, zone, aggregate) with None for a
    missing zone or aggregate (for fractions and failure domains), if known."""
    data = validate({**raw_config, "mode": "shadow", "dry_run": True,
                     "nova": {**raw_config.get("nova", {}), "cloud": None},
                     "retention": {**raw_config.get("retention", {}), "enabled": False}})
    with tempfile.TemporaryDirectory(prefix="hostdown-replay-") as tmp:
        data["database"] = {"url": f"sqlite:///{Path(tmp) / 'replay.sqlite'}"}
        config = Config(data=data, webhook_tokens={}, admin_tokens={})
        db = create_engine(data["database"]["url"])
        try:
            upgrade(db)
            store = Store(db)
            start = history[0].at if history else datetime.now(timezone.utc)
            clock = _Clock(start)
            if hosts:
                store.replace_inventory([{"host": h, "service_id": h, "zone": z, "aggregate": a}
                                         for h, z, a in hosts], start)
            engine = Engine(config, store, None, clock=clock)
            engine.gating.record = []
            for arrival in history:
                _run_until(engine, store, clock, arrival.at)
                clock.now = arrival.at
                store.add_signals([(s, classify(s, data["rules"])) for s in arrival.signals], arrival.at)
                _settle(engine)
            _run_until(engine, store, clock, (history[-1].at if history else start) + tail)
            found = [store.get_incident(i["id"]) for i in reversed(store.list_incidents(limit=1000))]
            return Result([{**inc, "timeline": list(_timeline(store, inc))} for inc in found],
                          engine.gating.record, sum(len(a.signals) for a in history))
        finally:
            db.dispose()


def _timeline(store: Store, incident: dict) -> Iterator[dict]:
    after = 0
    while page := store.incident_timeline(incident["id"], after=after, limit=1000):
        yield from page
        after = page[-1]["id"]


def _settle(engine: Engine) -> None:
    for _ in range(10_000):
        if not engine.run_once():
            return


def read_hosts(lines) -> list[tuple[str, str | None, str | None]]:
    """`HOST [ZONE [AGGREGATE]]` per line; `-` for a zone that is not known."""
    hosts = []
    for line in lines:
        host, zone, aggregate = (line.split() + [None] * 3)[:3]
        if host:
            hosts.append((host, None if zone == "-" else zone, aggregate))
    return hosts


def _run_until(engine: Engine, store: Store, clock: _Clock, until: datetime) -> None:
    """Let every step due before `until` happen, at its own time."""
    while (due := store.next_due(clock.now)) is not None and due <= until:
        clock.now = max(clock.now, due)
        if not engine.run_once() and store.next_due(clock.now) == due:
            clock.now = due + timedelta(seconds=1)  # due but not movable now (a lease): step past it


def render(result: Result) -> str:
    """Host by host, then gate by gate."""
    lines = []
    by_incident: dict[int, list[tuple]] = {}
    for at, incident_id, gate, effect, cause in result.gates:
        by_incident.setdefault(incident_id, []).append((at, gate, effect, cause))
    plans = 0
    for inc in sorted(result.incidents, key=lambda i: (i["host"], i["id"])):
        lines.append(f"{inc['host']}  incident {inc['id']}  opened {_iso(inc['opened_at'])}  -> {inc['state']}")
        waits = Counter(gate for _, gate, effect, _ in by_incident.get(inc["id"], []) if effect == "wait")
        for gate, n in sorted(waits.items()):
            first = next(c for _, g, e, c in by_incident[inc["id"]] if g == gate and e == "wait")
            lines.append(f"    waited on {gate} ({n} look{'s' if n > 1 else ''}): {first}")
        for entry in inc["timeline"]:
            if entry["from_state"] == entry["to_state"] and not entry["cause"].startswith("shadow: "):
                continue
            lines.append(f"    {_iso(entry['at'])}  {entry['to_state']:<10} {entry['cause']}")
        plans += any(e["cause"].startswith("shadow: ") for e in inc["timeline"])
    held = Counter(g for _, _, g, effect, _ in result.gates if effect == "hold")
    waited = Counter(g for _, _, g, effect, _ in result.gates if effect == "wait")
    lines.append("gates:")
    for gate in sorted(set(held) | set(waited)):
        lines.append(f"    {gate:<16} held {held[gate]:>5}  waits {waited[gate]:>5}")
    states = Counter(i["state"] for i in result.incidents)
    lines.append(f"replay: {result.signals} signals, {len(result.incidents)} incidents, {plans} would be fenced, "
                 f"{sum(held[g] for g in held if g != 'shadow')} held by a gate; final states "
                 + ", ".join(f"{s} {n}" for s, n in sorted(states.items())))
    return "\n".join(lines)


