"""alert_templates/nagios/hostdown_bridge_notify.py: argv handling, token, retries."""

import json
import subprocess
import sys

import pytest

from tests.sources.receiver import Receiver
from tests.sources.shipped import TEMPLATES, notify_script

SCRIPT = TEMPLATES / "nagios" / "hostdown_bridge_notify.py"
script = notify_script()


@pytest.fixture
def token_file(tmp_path):
    path = tmp_path / "token"
    path.write_text("s3cret\n")
    return str(path)


def argv(url, token_file, *extra):
    return ["--url", url, "--token-file", token_file, "--host", "compute-01", "--state", "DOWN",
            "--state-type", "HARD", "--last-state-change", "1795548045", *extra]


def test_values_are_taken_verbatim_whatever_they_look_like(token_file):
    hostile = "--url http://evil; $(reboot) `id` 'x' \"y\""
    args = script.parse_args(argv("u", token_file, "--output", hostile, "--notification-type", "--host"))
    assert args["output"] == hostile and args["notification_type"] == "--host"


@pytest.mark.parametrize("bad, why", [
    (["--url", "u", "--host"], "'--host' has no value"),
    (["--url", "u", "--colour", "red"], "unknown option '--colour'"),
    (["--url", "u", "--host", "h"], "missing or empty: --token-file, --state, --state-type, --last-state-change"),
    (["--url", "u", "--token-file", "t", "--host", "", "--state", "DOWN", "--state-type", "HARD",
      "--last-state-change", "1"], "missing or empty: --host"),
])
def test_usage_errors(bad, why):
    with pytest.raises(script.Usage, match=why):
        script.parse_args(bad)


def test_body_drops_empty_values_and_unexpanded_macros_and_reads_output_from_the_environment(token_file):
    args = script.parse_args(argv("u", token_file, "--notification-type", "", "--label", "openstack_host=c1",
                                  "--label", "rack=$_HOSTRACK$", "--label", "noequals"))
    assert script.body(args, {"NAGIOS_HOSTOUTPUT": "CRITICAL - down"}) == {
        "host": "compute-01", "state": "DOWN", "state_type": "HARD", "last_state_change": "1795548045",
        "output": "CRITICAL - down", "labels": {"openstack_host": "c1"}}


def run(url, token_file, *extra):
    return subprocess.run([sys.executable, str(SCRIPT), *argv(url, token_file, "--deadline", "3", *extra)],
                          capture_output=True, text=True, timeout=30, env={"NAGIOS_HOSTOUTPUT": "down"})


def test_posts_json_with_the_bearer_token(token_file):
    receiver = Receiver()
    try:
        done = run(receiver.url, token_file)
    finally:
        receiver.close()
    assert done.returncode == 0, done.stderr
    [(headers, data)] = receiver.requests
    assert headers["Authorization"] == "Bearer s3cret" and headers["Content-Type"] == "application/json"
    assert json.loads(data)["output"] == "down"


def test_retries_a_5xx_and_sends_the_same_body(token_file):
    receiver = Receiver([503, 500])
    try:
        done = run(receiver.url, token_file)
    finally:
        receiver.close()
    assert done.returncode == 0, done.stderr
    assert len(receiver.requests) == 3 and len({data for _, data in receiver.requests}) == 1


@pytest.mark.parametrize("shed", [429, 503])
def test_a_shed_request_is_retried_no_sooner_than_retry_after(token_file, shed):
    receiver = Receiver([(shed, {"Retry-After": "2"})])
    try:
        done = run(receiver.url, token_file)
    finally:
        receiver.close()
    assert done.returncode == 0, done.stderr
    assert len(receiver.requests) == 2 and receiver.arrived[1] - receiver.arrived[0] >= 2


def test_a_retry_after_beyond_the_deadline_gives_up_at_once(token_file):
    receiver = Receiver([(429, {"Retry-After": "60"})])
    try:
        done = run(receiver.url, token_file)
    finally:
        receiver.close()
    assert done.returncode == 1 and "gave up after" in done.stderr and "bridge answered 429" in done.stderr
    assert len(receiver.requests) == 1


@pytest.mark.parametrize("header, seconds", [
    (None, 0), ("7", 7), ("Thu, 01 Jan 1970 00:01:40 GMT", 40), ("Thu, 01 Jan 1970 00:00:10 GMT", 0),
    ("soon", 0), ("-3", 0),
])
def test_retry_after_is_read_as_seconds_or_an_http_date(header, seconds):
    assert script.retry_after(header, now=60) == seconds


def test_a_4xx_is_not_retried(token_file):
    receiver = Receiver([401])
    try:
        done = run(receiver.url, token_file)
    finally:
        receiver.close()
    assert done.returncode == 2 and "bridge answered 401" in done.stderr
    assert len(receiver.requests) == 1


def test_gives_up_after_the_deadline_when_nothing_answers(token_file):
    receiver = Receiver()
    receiver.close()
    receiver.server.server_close()
    done = run(receiver.url, token_file)
    assert done.returncode == 1 and "gave up after" in done.stderr


def test_missing_token_file_is_a_usage_error(tmp_path):
    done = run("http://127.0.0.1:9/", str(tmp_path / "absent"))
    assert done.returncode == 2 and "No such file" in done.stderr
