"""Offline rule testing, like `amtool config routes test`: what the bridge would do with a
payload, with no cloud, no database and no network.

The payload goes through the source's own parser and the configured rules exactly as
POST /v1/alerts/<source> takes it. Nothing is stored and Nova is not asked; a list of
known host names may stand in for Nova's, to check the name mapping.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from bridge import incidents as sm
from bridge import sources
from bridge.effects import FenceRequest
from bridge.rules import HOST_DOWN, IGNORE, UPSTREAM_DOWN, Mapping, classify, resolve_host
from bridge.signals import FIRING, Signal


@dataclass(frozen=True)
class Verdict:
    signal: Signal
    mapping: Mapping
    host: str  # the Nova host, or why there is none
    action: str


def unwrap(body: bytes) -> bytes:
    """A captured request ({"headers": ..., "body" or "json": {...}}) stands for its body."""
    try:
        doc = json.loads(body)
    except ValueError:
        return body  # the parser says what is wrong with it
    inner = doc.get("body", doc.get("json")) if isinstance(doc, dict) and "headers" in doc else None
    return json.dumps(inner).encode() if isinstance(inner, dict) else body


def _probe(host: str, state: str, firing: int) -> sm.Decision:
    """What the real decision core does with an incident of `host` in `state`."""
    from datetime import datetime, timezone

    incident = sm.Incident(id=0, host=host, state=state, dry_run=True)
    return sm.decide(sm.Facts(now=datetime.now(timezone.utc), incident=incident,
                              signals=sm.Signals({"probe": firing})))


def _on_firing(host: str) -> str:
    said = []
    if sm.admit(True, True, host, None, "", "", None).action == sm.OPEN:
        said.append(f"open the incident for {host}")
    if sm.admit(True, True, host, sm.Incident(0, host, sm.FENCING, True), "", "", None).action == sm.JOIN:
        said.append("(or join its open one)")
    first = _probe(host, sm.SUSPECTED, 1).effect
    if isinstance(first, FenceRequest):
        said.append("and request fencing")
    nova = _probe(host, sm.FENCED, 1)  # with no proof for the incident
    if nova.effect is None and nova.to_state == sm.HELD:
        said[-1] += "; Nova is touched only after fencing proof"
    return " ".join(said)


def _on_resolved(host: str) -> str:
    said = []
    if _probe(host, sm.FENCING, 0).to_state == sm.CANCELLED:
        said.append(f"if no other alert of its incident still fires and {host} is not fenced yet, "
                    "the incident is cancelled")
    if _probe(host, sm.OUT_OF_SERVICE, 0).to_state is None:
        said.append("a fenced host stays out of service")
    return "resolve: " + "; ".join(said)


def verdict(signal: Signal, mapping: Mapping, known_hosts: list[str] | None) -> Verdict:
    """What the bridge would do, as its decision core says (incidents.admit, incidents.decide)."""
    why = mapping.note.removeprefix(f"rule {mapping.rule!r}: ")
    if mapping.kind == UPSTREAM_DOWN:
        return Verdict(signal, mapping, "-", f"record; while it fires, hosts in failure domain "
                                             f"{mapping.candidate} are held (gate upstream)")
    if mapping.kind != HOST_DOWN:
        reason = "the rule says ignore" if mapping.kind == IGNORE else "no rule matches"
        return Verdict(signal, mapping, "-", f"record only ({reason})")
    if mapping.candidate is None:
        return Verdict(signal, mapping, f"none: {why}", "record only (no host to act on)")
    if signal.status != FIRING:
        return Verdict(signal, mapping, mapping.candidate, _on_resolved(mapping.candidate))
    host, how = resolve_host(mapping.candidate, known_hosts)
    if host is None:
        return Verdict(signal, mapping, f"none: {how}", "record only (no such Nova host)")
    return Verdict(signal, mapping, f"{host} ({how})", _on_firing(host))


def explain(source: str, body: bytes, rules: list[dict], known_hosts: list[str] | None = None) -> list[Verdict]:
    """Raises sources.PayloadError where the endpoint would answer 400."""
    return [verdict(s, classify(s, rules), known_hosts) for s in sources.parse(source, unwrap(body))]


def render(verdicts: list[Verdict]) -> str:
    lines = []
    for n, v in enumerate(verdicts, 1):
        s = v.signal
        lines.append(f"alert {n}/{len(verdicts)}: {s.source} {s.fingerprint} {s.status}")
        lines.append("  labels: " + " ".join(f"{k}={json.dumps(val)}" for k, val in sorted(s.labels.items())))
        lines.append(f"  rule:   {v.mapping.rule or '-'} ({v.mapping.kind})")
        lines.append(f"  host:   {v.host}")
        lines.append(f"  action: {v.action}")
    return "\n".join(lines)
