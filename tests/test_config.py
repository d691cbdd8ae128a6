import subprocess
import sys

import pytest
import yaml

from bridge.config import ConfigError, load


def write(tmp_path, data) -> str:
    path = tmp_path / "bridge.yaml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return str(path)


def error_of(tmp_path, data) -> str:
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, data))
    return str(info.value)


def test_embedded_default_needs_its_tokens_from_the_environment(monkeypatch):
    monkeypatch.delenv("HOSTDOWN_BRIDGE_WEBHOOK_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="HOSTDOWN_BRIDGE_WEBHOOK_TOKEN is not set"):
        load(None)
    monkeypatch.setenv("HOSTDOWN_BRIDGE_WEBHOOK_TOKEN", "w")
    monkeypatch.setenv("HOSTDOWN_BRIDGE_ADMIN_TOKEN", "a")
    config = load(None)
    assert config["dry_run"] is True and config.cloud is None
    assert config["retention"] == {"enabled": True, "signals_days": 30, "closed_incidents_days": 90,
                                   "interval": 3600, "batch": 1000}
    assert config.webhook_tokens == dict.fromkeys(["alertmanager", "zabbix", "nagios", "icinga2"], "w")
    assert config.admin_tokens == {"a": "admin"}


@pytest.mark.parametrize("data, message", [
    ({"dry_runn": True}, "top level: Additional properties are not allowed ('dry_runn' was unexpected)"),
    ({"server": {"bind": "8080"}}, "server.bind: '8080' does not match"),
    ({"fencing": {"on_timeout": "ignore"}}, "fencing.on_timeout: 'ignore' is not one of ['held', 'failed']"),
    ({"fencing": {"timeout": 0}}, "fencing.timeout: 0 is less than or equal to the minimum of 0"),
    ({"retention": {"signals_days": 0}}, "retention.signals_days: 0 is less than or equal to the minimum of 0"),
    ({"retention": {"batch": 0}}, "retention.batch: 0 is less than the minimum of 1"),
    ({"retention": {"keep": "forever"}}, "retention: Additional properties are not allowed ('keep' was unexpected)"),
    ({"auth": {"webhook_tokens": {"alertmanager": "inline-secret"}}},
     "auth.webhook_tokens.alertmanager: 'inline-secret' is not of type 'object' (a secret is {file: PATH} or"),
    ({"auth": {"webhook_tokens": {"alertmanager": {"file": "/x", "env": "Y"}}}},
     "has too many properties (a secret is {file: PATH} or {env: NAME}, never inline)"),
    ({"rules": [{"name": "r", "kind": "host_down"}]}, "rules[0]: 'host' is a required property"),
    ({"rules": [{"name": "r", "kind": "host_down", "host": {"template": "{{ labels.x"}}]},
     "rules[0].host.template: invalid template"),
    ({"rules": [{"name": "r", "kind": "ignore", "match_re": {"a": "("}}]}, "rules[0].match_re.a: invalid regex"),
    ({"rules": [{"name": "r", "kind": "ignore"}, {"name": "r", "kind": "ignore"}]},
     "rules[1].name: duplicate rule name 'r'"),
    ({"engine": {"lease_seconds": 10}}, "engine.lease_seconds: 10 must exceed the worst-case Nova step"),
    ({"servers": {"policy": "reboot"}}, "servers.policy: 'reboot' is not one of ['none', 'error', 'evacuate']"),
    ({"servers": {"groups": [{"policy": "error"}]}}, "servers.groups[0]: {'policy': 'error'} does not have enough"),
    ({"servers": {"groups": [{"hosts": "(", "policy": "error"}]}}, "servers.groups[0].hosts: invalid regex"),
    ({"servers": {"others": "evacuate"}}, "servers.others: 'evacuate' is not one of ['none', 'error']"),
    ({"servers": {"return": {"wait": 0}}}, "servers.return.wait: 0 is less than or equal to the minimum of 0"),
    ({"dry_run": False}, "nova.cloud: required when dry_run is false"),
    ("rules: [", "not valid YAML"),
    ("- a list", "top level: must be a mapping"),
])
def test_bad_config_names_the_key_and_the_reason(tmp_path, monkeypatch, data, message):
    monkeypatch.delenv("OS_CLOUD", raising=False)
    assert message in error_of(tmp_path, data)


def test_secrets_come_from_files_and_environment_and_are_never_shown(tmp_path, monkeypatch):
    (tmp_path / "admin").write_text("s3cret-admin\n")
    monkeypatch.setenv("AM_TOKEN", "s3cret-am")
    config = load(write(tmp_path, {"auth": {
        "webhook_tokens": {"alertmanager": {"env": "AM_TOKEN"}},
        "admin_tokens": [{"name": "ops", "token": {"file": str(tmp_path / "admin")}}]}}))
    assert config.webhook_tokens == {"alertmanager": "s3cret-am"}
    assert config.admin_tokens == {"s3cret-admin": "ops"}
    (tmp_path / "admin").write_text("")
    message = error_of(tmp_path, {"auth": {"admin_tokens": [{"name": "ops", "token": {"file": str(tmp_path / "admin")}}]}})
    assert message == f"auth.admin_tokens[0].token: secret file {tmp_path / 'admin'} is empty"


def test_admin_and_webhook_tokens_must_differ(tmp_path, monkeypatch):
    monkeypatch.setenv("T", "same")
    assert "an admin token must differ" in error_of(tmp_path, {"auth": {
        "webhook_tokens": {"alertmanager": {"env": "T"}}, "admin_tokens": [{"name": "a", "token": {"env": "T"}}]}})


def test_check_config_command_exits_non_zero_and_names_the_key(tmp_path, monkeypatch):
    monkeypatch.setenv("SECRET_TOKEN", "do-not-print-me")
    bad = write(tmp_path, {"auth": {"webhook_tokens": {"alertmanager": {"env": "SECRET_TOKEN"}}},
                           "fencing": {"on_timeout": "ignore"}})
    run = subprocess.run([sys.executable, "-m", "bridge", "check-config", bad], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 1
    assert "fencing.on_timeout: 'ignore' is not one of" in run.stderr
    good = write(tmp_path, {"auth": {"webhook_tokens": {"alertmanager": {"env": "SECRET_TOKEN"}}}})
    run = subprocess.run([sys.executable, "-m", "bridge", "check-config", good], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    assert "ok" in run.stdout and "do-not-print-me" not in run.stdout + run.stderr


def test_the_schema_names_exactly_the_sources_there_are():
    from bridge.config import DEFAULTS, schema
    from bridge.sources import PARSERS

    document = schema()
    properties, source = document["properties"], {"$ref": "#/$defs/source"}
    assert sorted(document["$defs"]["source"]["enum"]) == sorted(PARSERS)
    assert properties["auth"]["properties"]["webhook_tokens"]["propertyNames"] == source
    assert properties["rules"]["items"]["properties"]["source"] == source
    assert properties["server"]["properties"]["rate_limit"]["properties"]["shed_status"]["propertyNames"] == source
    assert sorted(DEFAULTS["server"]["rate_limit"]["shed_status"]) == sorted(PARSERS)
