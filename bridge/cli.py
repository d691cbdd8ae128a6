"""The hostdown-bridge command."""

from __future__ import annotations

import getpass
import json
import os
import sys
from pathlib import Path

import click

from bridge import __version__
from bridge.config import ConfigError, load
from bridge.sources import PARSERS, PayloadError


def _load(path: str | None):
    try:
        return load(path)
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hostdown-bridge")
def main():
    """nova-hostdown-bridge: monitoring alerts -> fenced, forced-down Nova compute hosts.

    Without --config the embedded default runs: SQLite in the current directory,
    dry-run, no cloud.
    """


config_option = click.option("--config", "config_path", envvar="HOSTDOWN_BRIDGE_CONFIG",
                             type=click.Path(dir_okay=False), help="YAML configuration [$HOSTDOWN_BRIDGE_CONFIG]")


log_format_option = click.option("--log-format", type=click.Choice(["text", "json"]),
                                 help="overrides logging.format: text for a terminal, json: one object per line")


@main.command()
@config_option
@click.option("--bind", help="host:port, overrides server.bind")
@click.option("--workers", type=click.IntRange(1, 64), help="worker processes, overrides server.workers")
@click.option("--threads", type=click.IntRange(1, 64), help="request threads per worker, overrides server.threads")
@click.option("--timeout", type=click.FloatRange(0, min_open=True),
              help="seconds before a stuck worker is replaced, overrides server.timeout")
@click.option("--graceful-timeout", type=click.FloatRange(0, min_open=True),
              help="seconds a SIGTERM gives requests and engine steps in flight, overrides server.graceful_timeout")
@click.option("--certfile", type=click.Path(dir_okay=False, exists=True), help="TLS certificate (PEM), with --keyfile")
@click.option("--keyfile", type=click.Path(dir_okay=False, exists=True), help="TLS private key (PEM), with --certfile")
@log_format_option
def serve(config_path, bind, workers, threads, timeout, graceful_timeout, certfile, keyfile, log_format):
    """Run the HTTP API and the engine (gunicorn)."""
    from bridge.serve import serve as run

    config = _load(config_path)
    if bool(certfile) != bool(keyfile):
        raise click.UsageError("--certfile and --keyfile go together")
    server = config["server"]
    flags = {"threads": threads, "timeout": timeout, "graceful_timeout": graceful_timeout,
             "tls": certfile and {**server.get("tls", {}), "certfile": certfile, "keyfile": keyfile}}
    server.update({key: value for key, value in flags.items() if value})
    if log_format:
        config["logging"]["format"] = log_format
    run(config, bind, workers)


@main.command()
@config_option
@log_format_option
def engine(config_path, log_format):
    """Run only the engine (no HTTP), e.g. as extra workers beside `serve`."""
    import signal
    import threading

    from bridge.app import build_nova, build_store, configure_logging
    from bridge.engine import Engine

    config = _load(config_path)
    if log_format:
        config["logging"]["format"] = log_format
    configure_logging(config)
    worker = Engine(config, build_store(config, migrate=True), build_nova(config))
    worker.start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    worker.stop(config["server"]["graceful_timeout"])


@main.command("check-config")
@click.argument("path", type=click.Path(dir_okay=False))
def check_config(path):
    """Validate a configuration file: schema, templates, regexes, fencing drivers, the fencing
    inventory file and every secret (never shown)."""
    from bridge.targets import Targets

    config = _load(path)
    try:
        targets = Targets(config["fencing"])
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    if targets.problems():
        raise click.ClickException("configuration: " + "; ".join(targets.problems()))
    click.echo(f"{path}: ok ({len(config['rules'])} rules, "
               f"{'dry-run' if config['dry_run'] else 'live'}, cloud: {config.cloud or 'none'}, "
               f"fencing: {' -> '.join(m.driver for m in targets.default)} by default, "
               f"{targets.own_hosts()} hosts of their own)")


@main.group()
def db():
    """Database schema and retention."""


@db.command()
@config_option
def upgrade(config_path):
    """Apply pending migrations."""
    from bridge.app import build_store

    build_store(_load(config_path), migrate=True)
    click.echo("database schema is current")


@db.command()
@config_option
@click.option("--dry-run", is_flag=True, help="count what is due, delete nothing")
def prune(config_path, dry_run):
    """Delete old signals and long-ended incidents (retention: in the config), in batches.
    Nothing an open incident needs, no signal not yet taken in, never the host inventory."""
    from datetime import datetime, timezone

    from bridge.app import build_store
    from bridge.store import pending_migrations
    from bridge.store.retention import Retention, prune as run

    config = _load(config_path)
    policy, engine = Retention.from_config(config), build_store(config).engine
    if pending_migrations(engine):
        raise click.ClickException("the database schema is not current: run `hostdown-bridge db upgrade` first")
    done = run(engine, policy, datetime.now(timezone.utc), dry_run=dry_run)
    counts = ", ".join(f"{n} {kind}" for kind, n in done.items())
    click.echo(f"{'due (dry-run, nothing deleted)' if dry_run else 'deleted'}: {counts} "
               f"(signals older than {policy.signals_days:g} days, incidents ended "
               f"{policy.closed_incidents_days:g} days ago)")


# ---- commands that talk to a running bridge ---------------------------------------------

def _client_options(fn):
    fn = click.option("--url", envvar="HOSTDOWN_BRIDGE_URL", default="http://127.0.0.1:8080", show_default=True,
                      help="the bridge's API [$HOSTDOWN_BRIDGE_URL]")(fn)
    fn = click.option("--token-file", type=click.Path(dir_okay=False, exists=True),
                      help="admin token file (or $HOSTDOWN_BRIDGE_TOKEN)")(fn)
    fn = click.option("--json", "as_json", is_flag=True, help="print the raw JSON answer")(fn)
    return fn


def _call(method: str, url: str, path: str, token_file: str | None, body: dict | None = None):
    import requests

    token = Path(token_file).read_text().strip() if token_file else os.environ.get("HOSTDOWN_BRIDGE_TOKEN")
    if not token:
        raise click.ClickException("no admin token: pass --token-file or set HOSTDOWN_BRIDGE_TOKEN")
    try:
        response = requests.request(method, url.rstrip("/") + path, json=body, timeout=30,
                                    headers={"Authorization": f"Bearer {token}"})
    except requests.RequestException as exc:
        raise click.ClickException(f"cannot reach {url}: {exc}") from None
    try:
        payload = response.json()
    except ValueError:
        payload = {"message": response.text}
    if response.status_code >= 400:
        raise click.ClickException(f"{response.status_code}: {payload.get('message', payload)}")
    return payload


def _echo_json(payload) -> None:
    click.echo(json.dumps(payload, indent=2, sort_keys=False))


@main.group()
def fence():
    """Fencing proof."""


@fence.command()
@click.argument("host")
@click.option("--reason", required=True, help="why you know the host is off (e.g. 'PDU port 7 cut, ticket 123')")
@click.option("--operator", default=getpass.getuser, show_default="current user", help="who confirms")
@_client_options
def confirm(host, reason, operator, url, token_file, as_json):
    """Confirm HOST is fenced (powered off). Counts for its open incident, or one that opens soon."""
    record = _call("POST", url, f"/v1/hosts/{host}/fence-confirmation", token_file,
                   {"reason": reason, "operator": operator})
    if as_json:
        return _echo_json(record)
    where = (f"incident {record['incident_id']}" if record["incident_id"]
             else f"the next incident for {record['host']} (until {record['expires_at']})")
    click.echo(f"fencing of {record['host']} confirmed by {record['actor']}: counts for {where}")


@fence.command("test")
@click.argument("host")
@config_option
def fence_test(host, config_path):
    """Read HOST's power state with each of its fencing methods, changing nothing: shows that
    its targets and credentials work. Exit status 1 if any method fails. Secrets are never shown."""
    import time

    from bridge.app import build_nova
    from bridge.fencing import POWER_DRIVERS
    from bridge.fencing.base import FenceError
    from bridge.fencing.bmccall import scrub
    from bridge.targets import Targets, TargetError

    config = _load(config_path)
    try:
        targets = Targets(config["fencing"], node_of=getattr(build_nova(config), "hypervisor_hostname", None))
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    failed = 0
    click.echo(f"{'#':<3}{'METHOD':<13}{'ADDRESS':<42}{'STATE':<10}{'MS':>8}  DETAIL")
    for n, target in enumerate(targets.targets(host), 1):
        if isinstance(target, TargetError):
            failed += 1
            click.echo(f"{n:<3}{'-':<13}{'-':<42}{'ERROR':<10}{'':>8}  {target}")
            continue
        shown = target.address or target.options.get("node") or "-"
        if target.method not in POWER_DRIVERS:
            click.echo(f"{n:<3}{target.method:<13}{shown:<42}{'-':<10}{'':>8}  proof comes from "
                       f"{'a person' if target.method == 'manual' else 'a power-off alert'}; nothing to read")
            continue
        started = time.monotonic()
        try:
            state, detail = POWER_DRIVERS[target.method]().power_state(target), "read back"
        except FenceError as exc:
            state, detail = "ERROR", scrub(str(exc), target)
            failed += 1
        click.echo(f"{n:<3}{target.method:<13}{shown:<42}{state:<10}{(time.monotonic() - started) * 1000:>8.0f}"
                   f"  {detail}")
    if failed:
        raise click.ClickException(f"{failed} fencing method(s) of {host} failed")


@main.group()
def incidents():
    """Read and act on incidents."""


@incidents.command("list")
@click.option("--state")
@click.option("--host")
@click.option("--open", "open_only", is_flag=True, help="only incidents not closed or cancelled")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True, help="incidents per page")
@click.option("--before", type=click.IntRange(0), help="only incidents older than this id (the next page)")
@_client_options
def list_incidents(state, host, open_only, limit, before, url, token_file, as_json):
    """List incidents, newest first, one page."""
    query = "&".join(f"{k}={v}" for k, v in (("state", state), ("host", host), ("open", "1" if open_only else None),
                                              ("limit", limit), ("before", before)) if v is not None)
    payload = _call("GET", url, f"/v1/incidents?{query}", token_file)
    if as_json:
        return _echo_json(payload)
    click.echo(f"{'ID':>5}  {'HOST':<24} {'STATE':<15} {'DRY':<4} {'OPENED':<28} LAST ERROR")
    for inc in payload["incidents"]:
        click.echo(f"{inc['id']:>5}  {inc['host']:<24} {inc['state']:<15} {'yes' if inc['dry_run'] else 'no':<4} "
                   f"{inc['opened_at']:<28} {inc['last_error'] or ''}")
    if payload["next"]:
        click.echo(f"more: --before {payload['incidents'][-1]['id']}")


def _every(url: str, path: str, key: str, token_file: str | None):
    """Each item of a paged list, following its `next` links."""
    while path:
        page = _call("GET", url, path, token_file)
        yield from page[key]
        path = page["next"]


@incidents.command("show")
@click.argument("incident_id", type=int)
@_client_options
def show_incident(incident_id, url, token_file, as_json):
    """One incident with its whole timeline (paged through) and its evidence."""
    inc = _call("GET", url, f"/v1/incidents/{incident_id}", token_file)
    counts, links = inc["counts"], inc["links"]
    whole = {name: inc[name] if counts[name] == len(inc[name])
             else list(_every(url, f"{links[name]}?limit=1000", name, token_file))
             for name in ("timeline", "evidence")}
    if as_json:
        return _echo_json({**inc, **whole})
    click.echo(f"incident {inc['id']}  host {inc['host']}  state {inc['state']}"
               f"{'  (dry-run)' if inc['dry_run'] else ''}")
    if inc["last_error"]:
        click.echo(f"last error: {inc['last_error']}")
    click.echo("timeline:")
    for entry in whole["timeline"]:
        move = entry["to_state"] if entry["from_state"] == entry["to_state"] else \
            f"{entry['from_state'] or '-'} -> {entry['to_state']}"
        click.echo(f"  {entry['at']}  {move:<26} {entry['cause']}  [{entry['actor']}]")
    for ev in whole["evidence"]:
        click.echo(f"evidence: {ev['kind']} by {ev['actor']} at {ev['at']}: {ev['reason']}")
    if inc.get("servers"):
        click.echo("servers:")
        for srv in inc["servers"]:
            where = f" -> {srv['result_host'] or srv['target_host']}" if srv["result_host"] or srv["target_host"] else ""
            locked = " user-locked" if srv["user_locked"] else ""
            click.echo(f"  {srv['server_id']}  {srv['name'][:24]:<24} {srv['action']:<8} {srv['status']:<9} "
                       f"{srv['step']:<12} tries {srv['attempts']}{where}{locked}"
                       f"{'  ' + srv['error'] if srv['error'] else ''}")
    from bridge.fencing.audit import attempts

    _echo_attempts(attempts(whole["timeline"], whole["evidence"]))
    by_source = ", ".join(f"{source} " + "/".join(f"{n} {status}" for status, n in sorted(statuses.items()))
                          for source, statuses in sorted(counts["signals_by_source"].items()))
    click.echo(f"signals: {counts['signals']}{f' ({by_source})' if by_source else ''}; {links['signals']}")


def _echo_attempts(items: list[dict]) -> None:
    """Each fencing attempt: driver, target, what was asked, what came of it, and when."""
    if items:
        click.echo("fencing attempts:")
    for a in items:
        what = {"proof": f"read back {a.get('state')} at {a.get('read_at')} (requested {a.get('requested_at')}; "
                         f"ms: {a.get('durations_ms')})",
                "failed": f"failed: {a.get('error')}"}.get(a["result"], a["result"] or "")
        asked = f" {a['requested']}" if a.get("requested") else ""
        click.echo(f"  {a['driver']} #{a['method']}.{a['attempt']} {a['address'] or '-'}{asked}: {what} [{a['at']}]")


def _operator_command(action: str, summary: str):
    @incidents.command(action, help=summary)
    @click.argument("incident_id", type=int)
    @click.option("--reason", required=True)
    @_client_options
    def command(incident_id, reason, url, token_file, as_json):
        inc = _call("POST", url, f"/v1/incidents/{incident_id}/{action}", token_file, {"reason": reason})
        if as_json:
            return _echo_json(inc)
        click.echo(f"incident {inc['id']} is now {inc['state']}")

    return command


_operator_command("retry", "Send a held or failed incident back to the step where it stopped.")
_operator_command("close", "End an incident without touching Nova.")
_operator_command("cancel", "Call off an incident not yet fenced (suspected, fencing, held or failed without proof).")


@incidents.command("approve")
@click.argument("incident_id", type=int)
@click.option("--gate", required=True, help="the one gate to release for this incident (e.g. mass_limit, upstream)")
@click.option("--reason", required=True)
@_client_options
def approve(incident_id, gate, reason, url, token_file, as_json):
    """Release one safety gate for INCIDENT_ID only; a held incident then resumes (other gates
    still apply)."""
    inc = _call("POST", url, f"/v1/incidents/{incident_id}/approve", token_file, {"gate": gate, "reason": reason})
    if as_json:
        return _echo_json(inc)
    click.echo(f"gate {gate} approved for incident {inc['id']}; it is now {inc['state']}")


def _pause_command(action: str, summary: str):
    @main.command(action, help=summary)
    @click.option("--reason", required=True)
    @_client_options
    def command(reason, url, token_file, as_json):
        state = _call("POST", url, f"/v1/{action}", token_file, {"reason": reason})
        if as_json:
            return _echo_json(state)
        click.echo(state["detail"] if state["paused"] else "not paused: incidents start fencing as the gates allow")

    return command


_pause_command("pause", "Pause the bridge: nothing new starts fencing; work in flight finishes. Survives restarts.")
_pause_command("resume", "Lift the pause.")


@main.group()
def host():
    """Act on a compute host."""


@host.command("return")
@click.argument("host_name", metavar="HOST")
@click.option("--reason", required=True, help="why the host may serve again (e.g. 'PSU replaced, ticket 123')")
@_client_options
def return_host(host_name, reason, url, token_file, as_json):
    """Return HOST to service: undo force-down, wait for nova-compute to report up, enable it.
    Refused while any evacuation from HOST is in flight; an alert resolving never does this."""
    inc = _call("POST", url, f"/v1/hosts/{host_name}/return", token_file, {"reason": reason})
    if as_json:
        return _echo_json(inc)
    click.echo(f"incident {inc['id']} is now {inc['state']}: {inc['note']}")


# ---- offline --------------------------------------------------------------------------------

@main.group("signals")
def signals_group():
    """The signal log."""


@signals_group.command("export")
@config_option
@click.option("--since", help="only signals received at or after this ISO 8601 time")
@click.option("--output", "-o", type=click.File("w"), default="-", help="file to write (default: stdout)")
def signals_export(config_path, since, output):
    """Write the stored signals, oldest first, one JSON object per line: what
    `hostdown-bridge replay` reads. Reads the database directly (no running bridge needed)."""
    from datetime import datetime, timezone

    from bridge.app import build_store
    from bridge.replay import export

    try:
        start = datetime.fromisoformat(since.replace("Z", "+00:00")) if since else None
    except ValueError:
        raise click.BadParameter(f"{since!r} is not an ISO 8601 time", param_hint="--since") from None
    if start is not None and start.tzinfo is None:
        start = start.replace(tzinfo=timezone.utc)
    for item in export(build_store(_load(config_path)), start):
        output.write(json.dumps(item, sort_keys=True) + "\n")


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False, exists=True),
              help="the configuration to try (its rules and gates); secrets are not read")
@click.option("--hosts", "hosts_file", type=click.File("r"),
              help="Nova's compute hosts as they were, one per line: HOST [ZONE [AGGREGATE]] (- for no zone)")
@click.argument("history", type=click.File("r"))
def replay(config_path, hosts_file, history):
    """Feed a recorded signal HISTORY (from `signals export`, or captured webhook bodies, one
    {"source", "received_at", "body"} per line; - for stdin) through the decision core with a
    simulated clock, offline, and print what would have happened, host by host and gate by gate.
    Nothing is fenced and no cloud is asked (shadow mode)."""
    import yaml

    from bridge.replay import HistoryError, read_history, read_hosts, render, replay as run

    try:
        raw = yaml.safe_load(Path(config_path).read_text()) or {}
        arrivals = read_history(history)
        hosts = read_hosts(hosts_file) if hosts_file else None
        click.echo(render(run(raw, arrivals, hosts)))
    except (ConfigError, HistoryError) as exc:
        raise click.ClickException(str(exc)) from None
    except yaml.YAMLError as exc:
        raise click.ClickException(f"{config_path}: not valid YAML: {exc}") from None

@main.group("rules")
def rules_group():
    """Rules, tried without a cloud."""


@rules_group.command("test")
@click.option("--source", required=True, type=click.Choice(sorted(PARSERS)), help="the sender, as in /v1/alerts/SOURCE")
@click.argument("payload", type=click.File("rb"))
@config_option
@click.option("--known-host", "known_hosts", multiple=True,
              help="a Nova compute host as Nova names it (repeat); without any, alert names are taken as given")
def rules_test(source, payload, config_path, known_hosts):
    """For each alert in PAYLOAD (a request body, or a captured request; - for stdin), as SOURCE
    sends it: the matching rule, the host it maps to (or why none) and what the bridge would do.
    Nothing is stored, no cloud is asked, secrets are not read."""
    from bridge.config import read
    from bridge.rulestest import explain, render

    try:
        rules = read(config_path)["rules"]
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    try:
        verdicts = explain(source, payload.read(), rules, list(known_hosts) or None)
    except PayloadError as exc:
        raise click.ClickException(f"{getattr(payload, 'name', '-')}: the bridge would answer 400: {exc}") from None
    click.echo(render(verdicts))


if __name__ == "__main__":
    sys.exit(main())
