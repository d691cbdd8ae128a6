"""Rules: which signals matter, and which Nova compute host each one is about.

Pure functions: a signal and the rules in, a Mapping out; resolution against Nova's
own host list takes that list as an argument.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import jinja2
import jinja2.sandbox

from bridge.signals import Signal

HOST_DOWN = "host_down"
POWER_OFF = "power_off"  # the host's power is off: fencing evidence, opted in per rule
UPSTREAM_DOWN = "upstream_down"  # a switch, rack or PDU: the host spec names the failure domain
IGNORE = "ignore"
UNMATCHED = "unmatched"

_templates = jinja2.sandbox.SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)


# compiled once per source text: compiling a template costs about 30 renderings of it
@functools.lru_cache(maxsize=1024)
def _template(source: str) -> jinja2.Template:
    return _templates.from_string(source)


# fencing address patterns (bridge.targets) use the same sandbox and cache
compile_template, TEMPLATES = _template, _templates


# "{{ labels.NAME }}", the common host template: read the label, as Jinja2 would, without a
# render (a tenth of the time). Not for a name a dict has as an attribute: Jinja2 gives that.
_ONE_LABEL = re.compile(r"\{\{\s*labels\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@functools.lru_cache(maxsize=1024)
def _label_of(source: str) -> str | None:
    found = _ONE_LABEL.fullmatch(source)
    return None if found is None or hasattr(dict, found.group(1)) else found.group(1)


@functools.lru_cache(maxsize=1024)
def _pattern(source: str) -> re.Pattern:
    return re.compile(source)


@dataclass(frozen=True)
class Mapping:
    rule: str | None
    kind: str  # HOST_DOWN | IGNORE | UNMATCHED
    candidate: str | None  # host name as the alert spells it
    note: str  # why it matched, or why no host


def _matches(rule: dict, signal: Signal) -> bool:
    if rule.get("source") not in (None, signal.source):
        return False
    labels = signal.labels
    for label, value in rule.get("match", {}).items():
        if labels.get(label) != value:
            return False
    for label, pattern in rule.get("match_re", {}).items():
        if _pattern(pattern).fullmatch(labels.get(label, "")) is None:
            return False
    return True


def render_host(spec: dict, signal: Signal) -> tuple[str | None, str]:
    """The host name a rule's host spec gives for a signal, or None and why."""
    label = _label_of(spec["template"])
    try:
        if label is not None:
            if label not in signal.labels:
                return None, f"host template: 'dict object' has no attribute {label!r}"
            text = str(signal.labels[label]).strip()
        else:
            text = _template(spec["template"]).render(
                labels=signal.labels, annotations=signal.annotations, source=signal.source
            ).strip()
    except jinja2.UndefinedError as exc:
        return None, f"host template: {exc.message}"
    except jinja2.TemplateError as exc:
        return None, f"host template failed: {exc}"
    if "regex" in spec:
        found = _pattern(spec["regex"]).search(text)
        if found is None:
            return None, f"host regex {spec['regex']!r} does not match {text!r}"
        group = "host" if "host" in found.re.groupindex else (1 if found.re.groups else 0)
        text = found.group(group)
    text = spec.get("map", {}).get(text, text)
    if not text:
        return None, "host template rendered an empty string"
    return text, f"host {text!r}"


def classify(signal: Signal, rules: list[dict]) -> Mapping:
    for rule in rules:
        if not _matches(rule, signal):
            continue
        if rule["kind"] not in (HOST_DOWN, POWER_OFF, UPSTREAM_DOWN):
            return Mapping(rule["name"], rule["kind"], None, f"rule {rule['name']!r}: {rule['kind']}")
        host, why = render_host(rule["host"], signal)
        return Mapping(rule["name"], rule["kind"], host, f"rule {rule['name']!r}: {why}")
    return Mapping(None, UNMATCHED, None, "no rule matches")


def short(name: str) -> str:
    return name.split(".", 1)[0].lower()


def resolve_host(candidate: str, known_hosts: list[str] | None) -> tuple[str | None, str]:
    """Find the Nova compute host a candidate name means.

    Exact match first, then short name against short name (FQDN vs short, either way),
    but only when exactly one known host fits. known_hosts None means no cloud to ask:
    the candidate is taken as it is.
    """
    if known_hosts is None:
        return candidate, "no cloud configured: host taken as given"
    if candidate in known_hosts:
        return candidate, "exact match"
    lowered = [h for h in known_hosts if h.lower() == candidate.lower()]
    if len(lowered) == 1:
        return lowered[0], "case-insensitive match"
    fits = [h for h in known_hosts if short(h) == short(candidate)]
    if len(fits) == 1:
        return fits[0], f"short-name match ({candidate!r} -> {fits[0]!r})"
    if len(fits) > 1:
        return None, f"{candidate!r} is ambiguous: {', '.join(sorted(fits))}"
    return None, f"no nova-compute service on host {candidate!r}"
