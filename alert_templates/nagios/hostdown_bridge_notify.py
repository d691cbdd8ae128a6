#!/usr/bin/env python3
"""Send one Nagios / Icinga 2 host or service state to nova-hostdown-bridge.

Use it as a notification command and as an event handler (one command serves both: the
notification type is simply empty in an event handler). Standard library only.

    hostdown_bridge_notify.py --url URL --token-file FILE --host NAME --state STATE
        --state-type HARD|SOFT --last-state-change EPOCH [--address A] [--service S]
        [--attempt N] [--max-attempts N] [--notification-type T] [--downtime-depth N]
        [--output TEXT] [--label KEY=VALUE ...]

Arguments are strict "--key value" pairs and every value is taken verbatim, whatever it
starts with: the monitoring system hands each macro over as its own argv item, never
through a shell. Without --output the plugin output is read from $NAGIOS_SERVICEOUTPUT
or $NAGIOS_HOSTOUTPUT (Nagios with enable_environment_macros=1), so that free text
never has to appear on a Nagios command line at all.

A 5xx, a 429 or a connection failure is retried with backoff until --deadline (default
25 s, under Nagios' 30 s notification_timeout), never sooner than the bridge's Retry-After
(a 429 or 503 when it sheds load); the bridge stores a repeat once. A 4xx is not retried:
the same request would be refused again.
Exit status: 0 stored, 1 gave up retrying, 2 refused by the bridge or bad usage.
"""

import email.utils
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request

FIELDS = ("host", "address", "service", "state", "state_type", "attempt", "max_attempts",
          "last_state_change", "notification_type", "downtime_depth", "output")
REQUIRED = ("url", "token_file", "host", "state", "state_type", "last_state_change")
OPTIONS = set(FIELDS) | {"url", "token_file", "label", "timeout", "deadline"}
# Nagios leaves a macro it does not know, such as an unset custom variable, as its text
UNEXPANDED = re.compile(r"\$[A-Z0-9_]+\$")


class Usage(Exception):
    pass


def parse_args(argv):
    if len(argv) % 2:
        raise Usage(f"arguments must be --key value pairs; {argv[-1]!r} has no value")
    args = {"label": []}
    for key, value in zip(argv[::2], argv[1::2]):
        name = key[2:].replace("-", "_") if key.startswith("--") else None
        if name not in OPTIONS:
            raise Usage(f"unknown option {key!r}")
        if name == "label":
            args["label"].append(value)
        else:
            args[name] = value
    missing = [f"--{k.replace('_', '-')}" for k in REQUIRED if not args.get(k, "").strip()]
    if missing:
        raise Usage(f"missing or empty: {', '.join(missing)}")
    return args


def body(args, environ):
    if "output" not in args:
        args["output"] = environ.get("NAGIOS_SERVICEOUTPUT" if args.get("service") else "NAGIOS_HOSTOUTPUT", "")
    out = {k: args[k] for k in FIELDS if args.get(k, "").strip()}
    labels = {}
    for item in args["label"]:
        key, sep, value = item.partition("=")
        if sep and key.strip() and value.strip() and not UNEXPANDED.fullmatch(value.strip()):
            labels[key.strip()] = value.strip()
    if labels:
        out["labels"] = labels
    return out


def retry_after(value, now):
    """Seconds a Retry-After header (delay seconds or an HTTP date) asks to wait; 0 if none."""
    if not value:
        return 0
    if value.strip().isdigit():
        return int(value)
    try:
        return max(0, email.utils.parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return 0


def post(url, token, data, timeout, deadline):
    """(exit status, what happened)"""
    started, delay = time.monotonic(), 0.5
    request = urllib.request.Request(url, data=data, method="POST", headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {token}",
        "User-Agent": "hostdown-bridge-notify/1"})
    while True:
        wait = delay
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return 0, f"bridge answered {response.status}: {response.read(300).decode(errors='replace')}"
        except urllib.error.HTTPError as exc:
            what = f"bridge answered {exc.code}: {exc.read(300).decode(errors='replace')}"
            if exc.code < 500 and exc.code != 429:
                return 2, what
            wait = max(delay, retry_after(exc.headers.get("Retry-After"), time.time()))
        except OSError as exc:  # refused, reset, DNS, timeout (URLError is an OSError)
            what = f"cannot reach {url}: {getattr(exc, 'reason', exc)}"
        if time.monotonic() - started + wait > deadline:
            return 1, f"gave up after {time.monotonic() - started:.1f}s: {what}"
        time.sleep(wait)
        delay = min(delay * 2, 8)


def main(argv, environ):
    try:
        args = parse_args(argv)
        with open(args["token_file"]) as f:
            token = f.read().strip()
        if not token:
            raise Usage(f"token file {args['token_file']} is empty")
        timeout, deadline = float(args.get("timeout", 5)), float(args.get("deadline", 25))
    except (Usage, OSError, ValueError) as exc:
        print(f"hostdown-bridge-notify: {exc}\n{__doc__.split(chr(10) * 2)[2]}", file=sys.stderr)
        return 2
    data = json.dumps(body(args, environ)).encode()
    status, what = post(args["url"], token, data, timeout, deadline)
    print(f"hostdown-bridge-notify: {what}", file=sys.stdout if status == 0 else sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], os.environ))
