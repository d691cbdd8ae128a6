"""Configuration: one YAML file, validated by the JSON Schema shipped in the package.

Errors name the key and the reason. Secrets are references ({file: ...} or {env: ...})
resolved at start; their values are never logged or shown.
"""

from __future__ import annotations

import copy
import json
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import jsonschema
import limits
import yaml

from bridge.sources.base import where

DEFAULTS: dict[str, Any] = {
    "dry_run": True,
    "server": {
        "bind": "127.0.0.1:8080",
        "workers": 2,
        "threads": 32,  # for the admin API and webhooks over 64 KiB (a smaller one needs no thread)
        "max_body_bytes": 1024 * 1024,
        "worker_connections": 1000,
        "keepalive": 75,  # longer than senders keep idle connections: they close first, no reset race
        "header_timeout": 10,
        "body_timeout": 30,
        "limit_request_line": 4094,
        "limit_request_fields": 100,
        "limit_request_field_size": 8190,
        "timeout": 60,
        "graceful_timeout": 30,
        "rate_limit": {"enabled": True, "webhook": "5000/second", "admin": "50/second",
                       # the status each sender retries (Alertmanager drops a 429)
                       "shed_status": {"alertmanager": 503, "zabbix": 429, "nagios": 429, "icinga2": 429}},
    },
    "database": {"url": "sqlite:///hostdown-bridge.sqlite"},
    "auth": {"webhook_tokens": {}, "admin_tokens": []},
    "nova": {
        "cloud": None,
        "timeout": 10,
        "attempts": 4,
        "backoff_max": 8,
        "inventory_ttl": 60,
        "reason_prefix": "nova-hostdown-bridge",
    },
    "fencing": {"timeout": 300, "on_timeout": "held", "confirmation_window": 600,
                "methods": [{"driver": "manual"}], "groups": {}, "hosts": {}, "inventory": None,
                "allow_loopback": False, "poll_interval": 1.0, "concurrency": 16, "step_wait": 1.0},
    "engine": {"enabled": True, "threads": 2, "lease_seconds": 120, "idle_poll": 1.0},
    # the failed host's servers (bridge/servers.py): none / error / evacuate
    "servers": {"policy": "none", "groups": [], "policy_key": "hostdown_policy", "priority_key": "HA_Priority",
                "opt_in": {"metadata": {"HA_Enabled": "True"}}, "others": "none", "task_in_flight": "act",
                "target_hosts": [], "concurrency": 10, "max_in_flight": 100, "attempts": 2, "poll_interval": 2,
                "settle_timeout": 600, "lock": True, "page_size": 200,
                "return": {"enable": True, "wait": 900, "poll_interval": 5}},
    "retention": {"enabled": True, "signals_days": 30, "closed_incidents_days": 90, "interval": 3600,
                  "batch": 1000},
    "logging": {"level": "INFO", "format": "text", "access": True},
    # act: fence and call Nova (dry_run decides whether for real); shadow: run everything,
    # gates and Nova reads included, fence nothing, change nothing, record the plan
    "mode": "act",
    # safety gates (bridge/gates.py): null turns one off. Those that need numbers for your
    # fleet are off here; the observers and holds that need none are on. README: "Safety gates".
    "gates": {
        "max_count": None, "max_fraction": None, "storm_cooldown": None,
        "failure_domain": None, "per_domain": {"max_count": None, "max_fraction": None},
        "rate": {"hosts": None, "window": 600},
        "min_duration": None, "min_sources": None, "nova_heartbeat_age": None,
        "flapping": {"changes": None, "window": 600},
        "watchdog": None, "burst": {"count": None, "window": 60},
        "nova_reachable": True, "upstream": True, "maintenance": True, "foreign_disable": True,
        "alertmanager_silences": None, "zabbix_maintenance": None,
        "recheck": 15, "view_ttl": 1.0,
    },
    "rules": [],
}


class ConfigError(ValueError):
    pass


def schema() -> dict:
    return json.loads(resources.files("bridge").joinpath("schema/config.schema.json").read_text())


def _merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def read_secret(ref: dict, key: str) -> str:
    if "env" in ref:
        value = os.environ.get(ref["env"])
        if not value:
            raise ConfigError(f"{key}: environment variable {ref['env']} is not set or empty")
        return value.strip()
    try:
        value = Path(ref["file"]).read_text().strip()
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read secret file {ref['file']}: {exc.strerror}") from None
    if not value:
        raise ConfigError(f"{key}: secret file {ref['file']} is empty")
    return value


def _check_rules(rules: list[dict]) -> None:
    env = jinja2.Environment()
    seen = set()
    for i, rule in enumerate(rules):
        key = f"rules[{i}]"
        if rule["name"] in seen:
            raise ConfigError(f"{key}.name: duplicate rule name {rule['name']!r}")
        seen.add(rule["name"])
        for label, pattern in rule.get("match_re", {}).items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ConfigError(f"{key}.match_re.{label}: invalid regex: {exc}") from None
        host = rule.get("host")
        if not host:
            continue
        try:
            env.parse(host["template"])
        except jinja2.TemplateSyntaxError as exc:
            raise ConfigError(f"{key}.host.template: invalid template: {exc.message}") from None
        if "regex" in host:
            try:
                re.compile(host["regex"])
            except re.error as exc:
                raise ConfigError(f"{key}.host.regex: invalid regex: {exc}") from None


def _check_server_groups(groups: list[dict]) -> None:
    for i, group in enumerate(groups):
        if "hosts" in group:
            try:
                re.compile(group["hosts"])
            except re.error as exc:
                raise ConfigError(f"servers.groups[{i}].hosts: invalid regex: {exc}") from None


def _check_rates(rates: dict) -> None:
    for who in ("webhook", "admin"):
        try:
            items = limits.parse_many(rates[who])
        except ValueError:
            items = []
        if not items or any(item.amount < 1 for item in items):
            raise ConfigError(f"server.rate_limit.{who}: {rates[who]!r} is not COUNT/PERIOD (COUNT >= 1, "
                              "PERIOD second, minute, hour or day), several joined by ';'")


def _check_fencing(fencing: dict) -> None:
    """Drivers known, templates valid (secrets and the inventory file are read by bridge.targets)."""
    from bridge.targets import check

    check(fencing)


@dataclass(frozen=True)
class Config:
    data: dict[str, Any]
    webhook_tokens: dict[str, str]
    admin_tokens: dict[str, str]  # token -> name
    path: str | None = None

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    @property
    def cloud(self) -> str | None:
        return self.data["nova"]["cloud"] or os.environ.get("OS_CLOUD") or None


def validate(raw: Any) -> dict:
    """Check a parsed document; return it merged with the defaults."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("top level: must be a mapping")
    validator = jsonschema.Draft202012Validator(schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(raw))
    if error is not None:
        message = error.message
        if error.schema.get("description", "").startswith("A secret"):
            message += " (a secret is {file: PATH} or {env: NAME}, never inline)"
        raise ConfigError(f"{where(error.absolute_path) if error.absolute_path else 'top level'}: {message}")
    data = _merge(DEFAULTS, raw)
    _check_rules(data["rules"])
    _check_rates(data["server"]["rate_limit"])
    _check_fencing(data["fencing"])
    _check_server_groups(data["servers"]["groups"])
    lease = data["engine"]["lease_seconds"]
    budget = data["nova"]["attempts"] * (data["nova"]["timeout"] + data["nova"]["backoff_max"])
    if lease <= budget:
        raise ConfigError(
            f"engine.lease_seconds: {lease} must exceed the worst-case Nova step "
            f"(nova.attempts x (nova.timeout + nova.backoff_max) = {budget:g}), "
            "or a second worker could repeat a step still in flight"
        )
    return data


def read(path: str | os.PathLike | None) -> dict:
    """The file (or the embedded default) validated and merged with the defaults; secrets unread."""
    if path:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"{path}: {exc.strerror}") from None
    else:
        text = resources.files("bridge").joinpath("default-config.yaml").read_text()
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path or 'default config'}: not valid YAML: {exc}") from None
    return validate(raw)


def load(path: str | os.PathLike | None) -> Config:
    data = read(path)
    webhook = {
        source: read_secret(ref, f"auth.webhook_tokens.{source}")
        for source, ref in data["auth"]["webhook_tokens"].items()
    }
    admin: dict[str, str] = {}
    for i, entry in enumerate(data["auth"]["admin_tokens"]):
        admin[read_secret(entry["token"], f"auth.admin_tokens[{i}].token")] = entry["name"]
    for key, file in (data["server"].get("tls") or {}).items():  # gunicorn would fail later, less clearly
        if not os.access(file, os.R_OK):
            raise ConfigError(f"server.tls.{key}: cannot read {file}")
    config = Config(data=data, webhook_tokens=webhook, admin_tokens=admin, path=str(path) if path else None)
    if not data["dry_run"] and config.cloud is None:
        raise ConfigError("nova.cloud: required when dry_run is false (or set OS_CLOUD)")
    if set(admin) & set(webhook.values()):
        raise ConfigError("auth: an admin token must differ from every webhook token")
    return config
