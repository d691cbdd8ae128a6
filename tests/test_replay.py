"""Replay: the signal log (or captured bodies) through the engine under a new config, offline."""

import json

import yaml
from click.testing import CliRunner

from bridge.cli import main
from bridge.replay import export, read_history, render, replay
from tests.test_gates_engine import alerts

RULES = [{"name": "compute-host-down", "source": "alertmanager", "match_re": {"alertname": "HostDown"},
          "kind": "host_down", "host": {"template": "{{ labels.openstack_host }}"}}]


def captured(at: str, *hosts, **labels) -> str:
    return json.dumps({"source": "alertmanager", "received_at": at, "body": alerts(*hosts, **labels)})


def test_the_same_history_under_two_limits_held_or_would_be_fenced_after_the_debounce():
    storm = [captured("2026-11-24T12:00:00Z", *[f"compute-{n:02d}" for n in range(1, 13)])]
    lone = [captured("2026-11-24T14:00:00Z", "compute-30")]
    history = read_history(storm + lone)
    strict = replay({"rules": RULES, "gates": {"max_count": 10, "min_duration": 60}}, history)
    by_host = {i["host"]: i for i in strict.incidents}
    assert len(by_host) == 13 and {i["state"] for i in by_host.values()} == {"held"}
    assert "gate mass_limit: 12 hosts down" in by_host["compute-01"]["last_error"]
    # held incidents stay down until a person acts: two hours later the count is cumulative
    assert "gate mass_limit: 13 hosts down" in by_host["compute-30"]["last_error"]
    text = render(strict)
    assert "    mass_limit       held    13  waits     0" in text
    assert text.splitlines()[-1] == ("replay: 13 signals, 13 incidents, 0 would be fenced, 13 held by a gate; "
                                     "final states held 13")

    loose = replay({"rules": RULES, "gates": {"max_count": 20, "min_duration": 60}}, history)
    lone = {i["host"]: i for i in loose.incidents}["compute-30"]
    [plan] = [t for t in lone["timeline"] if t["cause"].startswith("shadow: ")]
    assert plan["cause"].endswith("on compute-30")
    assert plan["at"].isoformat() == "2026-11-24T14:01:00+00:00"  # a minute after its alert, simulated
    text = render(loose)
    assert "compute-30  incident 13" in text and "waited on min_duration (1 look)" in text
    assert text.splitlines()[-1].startswith("replay: 13 signals, 13 incidents, 13 would be fenced, 0 held by a gate")


def test_the_exported_signal_log_replays_under_another_config(bridge, tmp_path):
    bridge.post_alert(alerts("compute-01", "compute-02"))
    bridge.clock.advance(30)
    resolved = alerts("compute-02")
    resolved["alerts"][0]["status"] = "resolved"
    bridge.post_alert(resolved)
    lines = [json.dumps(item) for item in export(bridge.store)]
    assert [json.loads(line)["status"] for line in lines] == ["firing", "firing", "resolved"]
    history = tmp_path / "signals.jsonl"
    history.write_text("\n".join(lines) + "\n")
    config = tmp_path / "new.yaml"
    config.write_text(yaml.safe_dump({"rules": RULES, "gates": {"min_duration": 60}}))
    out = CliRunner().invoke(main, ["replay", "--config", str(config), str(history)])
    assert out.exit_code == 0, out.output
    # compute-02's alert resolved within the new minute of debounce: cancelled, never fenced
    assert "compute-02  incident 2  opened" in out.output and "-> cancelled" in out.output
    assert "shadow: would fence it with driver manual" in out.output
    assert out.output.splitlines()[-1].startswith("replay: 3 signals, 2 incidents, 1 would be fenced")


def test_a_broken_history_line_is_named():
    out = CliRunner().invoke(main, ["replay", "--config", "/dev/null", "-"], input='{"source": "alertmanager"}\n')
    assert out.exit_code == 1 and "line 1: KeyError: 'received_at'" in out.output


def test_signals_export_writes_json_lines(bridge, tmp_path):
    bridge.post_alert(alerts("compute-01"))
    config = tmp_path / "bridge.yaml"
    config.write_text(yaml.safe_dump({"database": bridge.config["database"]}))
    out = CliRunner().invoke(main, ["signals", "export", "--config", str(config)])
    assert out.exit_code == 0, out.output
    [line] = out.output.splitlines()
    item = json.loads(line)
    assert item["fingerprint"] == "fp-HostDown-compute-01" and item["status"] == "firing"
    assert item["labels"]["openstack_host"] == "compute-01"


def test_a_fraction_needs_the_host_list_which_hosts_gives(tmp_path):
    history = tmp_path / "bodies.jsonl"
    history.write_text(captured("2026-11-24T12:00:00Z", "compute-01", "compute-02", "compute-03") + "\n")
    config = tmp_path / "new.yaml"
    config.write_text(yaml.safe_dump({"rules": RULES, "gates": {"max_fraction": 0.2}}))
    hosts = tmp_path / "hosts.txt"
    hosts.write_text("".join(f"compute-{n:02d} az{n % 2}\n" for n in range(1, 11)))
    unknown = CliRunner().invoke(main, ["replay", "--config", str(config), str(history)])
    assert "max_fraction set but Nova's host count is unknown" in unknown.output
    known = CliRunner().invoke(main, ["replay", "--config", str(config), "--hosts", str(hosts), str(history)])
    assert known.exit_code == 0, known.output
    assert "gate mass_limit: 3 of 10 hosts down, more than the 2 allowed" in known.output


def test_an_aggregate_failure_domain_is_read_from_the_hosts_file(tmp_path):
    history = tmp_path / "bodies.jsonl"
    history.write_text(captured("2026-11-24T12:00:00Z", "compute-01", "compute-02", "compute-06") + "\n")
    config = tmp_path / "new.yaml"
    config.write_text(yaml.safe_dump({"rules": RULES, "gates": {
        "failure_domain": {"nova": "aggregate", "match": "rack-.*"}, "per_domain": {"max_count": 1}}}))
    hosts = tmp_path / "hosts.txt"  # rack-1: compute-01..05, rack-2: compute-06..10; no zones
    hosts.write_text("\n".join(f"compute-{n:02d} - rack-{(n - 1) // 5 + 1}" for n in range(1, 11)) + "\n\n")
    out = CliRunner().invoke(main, ["replay", "--config", str(config), "--hosts", str(hosts), str(history)])
    assert out.exit_code == 0, out.output
    assert "gate domain_limit: 2 hosts down in failure domain rack-1, more than the 1 allowed" in out.output
    assert "would fence it with driver manual, then nova force_down, then nova disable on compute-06" in out.output
    assert out.output.splitlines()[-1].startswith("replay: 3 signals, 3 incidents, 1 would be fenced")
