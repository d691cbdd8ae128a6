from datetime import datetime, timezone

import jinja2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.rules import HOST_DOWN, IGNORE, UNMATCHED, _template, classify, render_host, resolve_host
from bridge.signals import Signal


def signal(**labels) -> Signal:
    return Signal("alertmanager", "fp", "firing", labels, {"summary": "down"},
                  datetime(2026, 1, 1, tzinfo=timezone.utc))


RULES = [
    {"name": "drop-tests", "match": {"env": "test"}, "kind": "ignore"},
    {"name": "by-label", "match": {"alertname": "HostDown"}, "match_re": {"severity": "critical|page"},
     "kind": "host_down", "host": {"template": "{{ labels.openstack_host }}"}},
    {"name": "by-instance", "match": {"alertname": "NodeDown"}, "kind": "host_down",
     "host": {"template": "{{ labels.instance }}", "regex": r"^(?P<host>[^:]+):\d+$",
              "map": {"10.0.0.7": "compute-07"}}},
    {"name": "zabbix-only", "source": "zabbix", "kind": "host_down", "host": {"template": "{{ labels.host }}"}},
]


def test_first_matching_rule_decides():
    assert classify(signal(alertname="HostDown", severity="critical", env="test"), RULES).kind == IGNORE
    mapping = classify(signal(alertname="HostDown", severity="page", openstack_host="compute-01"), RULES)
    assert (mapping.rule, mapping.kind, mapping.candidate) == ("by-label", HOST_DOWN, "compute-01")


def test_match_re_is_anchored():
    assert classify(signal(alertname="HostDown", severity="critical-ish", openstack_host="c"), RULES).kind == UNMATCHED


def test_regex_capture_and_static_map():
    assert classify(signal(alertname="NodeDown", instance="compute-09.example:9100"), RULES).candidate == \
        "compute-09.example"
    assert classify(signal(alertname="NodeDown", instance="10.0.0.7:9100"), RULES).candidate == "compute-07"


def test_a_rule_for_another_source_does_not_match():
    assert classify(signal(host="compute-01"), RULES).kind == UNMATCHED


@pytest.mark.parametrize("labels, why", [
    ({"alertname": "HostDown", "severity": "critical"}, "'dict object' has no attribute 'openstack_host'"),
    ({"alertname": "NodeDown", "instance": "no-port"}, "does not match 'no-port'"),
    ({"alertname": "HostDown", "severity": "critical", "openstack_host": ""}, "rendered an empty string"),
])
def test_a_matched_alert_that_names_no_host_says_why(labels, why):
    mapping = classify(signal(**labels), RULES)
    assert mapping.kind == HOST_DOWN and mapping.candidate is None
    assert why in mapping.note


def test_templates_are_sandboxed():
    rules = [{"name": "evil", "kind": "host_down",
              "host": {"template": "{{ labels.__class__.__mro__[1].__subclasses__() }}"}}]
    mapping = classify(signal(a="b"), rules)
    assert mapping.candidate is None and "host template" in mapping.note


KNOWN = ["compute-01", "compute-02.example.org", "Compute-03", "dup.a.example", "dup.b.example"]


@pytest.mark.parametrize("candidate, host", [
    ("compute-01", "compute-01"),
    ("compute-01.example.org", "compute-01"),  # FQDN alert, short Nova host
    ("compute-02", "compute-02.example.org"),  # short alert, FQDN Nova host
    ("compute-03", "Compute-03"),
    ("COMPUTE-01", "compute-01"),
])
def test_resolution_tolerates_short_name_and_fqdn(candidate, host):
    assert resolve_host(candidate, KNOWN)[0] == host


def test_resolution_refuses_ambiguity_and_unknown_hosts():
    assert resolve_host("dup", KNOWN) == (None, "'dup' is ambiguous: dup.a.example, dup.b.example")
    assert resolve_host("compute-99", KNOWN) == (None, "no nova-compute service on host 'compute-99'")
    assert resolve_host("anything", None)[0] == "anything"  # no cloud: taken as given


def test_each_template_is_compiled_once_not_per_alert(monkeypatch):
    from bridge import rules

    compiled = []
    compile_ = rules._templates.compile
    monkeypatch.setattr(rules._templates, "compile", lambda source, *a, **k: compiled.append(source) or
                        compile_(source, *a, **k))
    template = "{{ labels.openstack_host }}-once"  # a source no other test compiled before
    rule = [{"name": "r", "kind": "host_down", "host": {"template": template}}]
    for n in range(50):
        assert classify(signal(openstack_host=f"compute-{n}"), rule).candidate == f"compute-{n}-once"
    assert compiled.count(template) == 1


NAMES = st.sampled_from(["openstack_host", "host", "items", "keys", "get", "_x", "Instance"])


@settings(max_examples=200, deadline=None)
@given(name=NAMES, spaces=st.sampled_from(["", " ", "  "]),
       labels=st.dictionaries(NAMES, st.text(max_size=6), max_size=4))
def test_a_one_label_template_reads_the_label_as_jinja_renders_it(name, spaces, labels):
    template, alert = f"{{{{{spaces}labels.{name}{spaces}}}}}", signal(**labels)
    try:
        text = _template(template).render(labels=alert.labels, annotations={}, source="alertmanager").strip()
        expected = (text or None, f"host {text!r}" if text else "host template rendered an empty string")
    except jinja2.UndefinedError as exc:
        expected = (None, f"host template: {exc.message}")
    assert render_host({"template": template}, alert) == expected
