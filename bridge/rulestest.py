"""Offline rule testing, like `amtool config routes test`: what the bridge would do with a
payload, with no cloud, no database and no network.

The payload goes through the source's own parser and the configured rules exactly as
POST /v1/alerts/<source> takes it. Nothing is stored and Nova is not asked; a list of
known host names may stand in for Nova's, to check the name mapping.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from bridge import sources
from bridge.rules import HOST_DOWN, IGNORE, Mapping, classify, resolve_host
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


def verdict(signal: Signal, mapping: Mapping, known_hosts: list[str] | None) -> Verdict:
    why = mapping.note.removeprefix(f"rule {mapping.rule!r}: ")
    if mapping.kind != HOST_DOWN:
        reason = "the rule says ignore" if mapping.kind == IGNORE else "no rule matches"
        return Verdict(signal, mapping, "-", f"record only ({reason})")
    if mapping.candidate is None:
        return Verdict(signal, mapping, f"none: {why}", "record only (no host to act on)")
    if signal.status != FIRING:
        return Verdict(signal, mapping, mapping.candidate,
                       f"resolve: if no other alert of its incident still fires and {mapping.candidate} is "
                       "not fenced yet, the incident is cancelled; a fenced host stays out of service")
    host, how = resolve_host(mapping.candidate, known_hosts)
    if host is None:
        return Verdict(signal, mapping, f"none: {how}", "record only (no such Nova host)")
    return Verdict(signal, mapping, f"{host} ({how})",
                   f"open the incident for {host} (or join its open one) and request fencing; "
                   "Nova is touched only after fencing proof")


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
