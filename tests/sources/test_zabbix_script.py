"""alert_templates/zabbix/hostdown-bridge.js run by Zabbix's own script engine (zabbix_js,
from Debian's zabbix-server-pgsql) against a stand-in bridge: body, token, retries."""

import json
import shutil
import subprocess

import pytest

from tests.conftest import sample_json
from tests.sources.receiver import Receiver
from tests.sources.shipped import TEMPLATES

pytestmark = pytest.mark.zabbix

SCRIPT = TEMPLATES / "zabbix" / "hostdown-bridge.js"


def run(receiver: Receiver) -> subprocess.CompletedProcess:
    """The script as the alerter runs it: every media type parameter a string, 30 s timeout."""
    event = sample_json("zabbix/webhook_problem.json")["body"]
    params = {**event, "event_tags": json.dumps(event["event_tags"]),
              "URL": receiver.url, "Token": "s3cret", "HTTPProxy": ""}
    zabbix_js = shutil.which("zabbix_js")
    assert zabbix_js, "zabbix_js not found: install zabbix-server-pgsql (tests/install_peers.sh)"
    try:
        return subprocess.run([zabbix_js, "-s", str(SCRIPT), "-p", json.dumps(params), "-t", "30"],
                              capture_output=True, text=True, timeout=40)
    finally:
        receiver.close()


def test_posts_the_event_as_json_with_the_bearer_token():
    receiver = Receiver(source="zabbix")
    done = run(receiver)
    assert done.returncode == 0 and "stored" in done.stdout, done.stderr
    [(headers, data)] = receiver.requests
    assert headers["Authorization"] == "Bearer s3cret" and headers["Content-Type"] == "application/json"
    body = json.loads(data)
    assert body["event_id"] == "26" and isinstance(body["event_tags"], list)
    assert not {"URL", "Token", "HTTPProxy"} & set(body)


@pytest.mark.parametrize("shed", [429, 503])
def test_a_shed_request_is_tried_again_no_sooner_than_retry_after(shed):
    receiver = Receiver([(shed, {"Retry-After": "2"})], source="zabbix")
    done = run(receiver)
    assert done.returncode == 0 and "stored" in done.stdout, done.stderr
    assert len(receiver.requests) == 2 and len({data for _, data in receiver.requests}) == 1
    assert receiver.arrived[1] - receiver.arrived[0] >= 2


def test_a_5xx_without_retry_after_is_tried_again_with_backoff():
    receiver = Receiver([500, 502], source="zabbix")
    done = run(receiver)
    assert done.returncode == 0, done.stderr
    assert len(receiver.requests) == 3


def test_a_retry_after_beyond_the_deadline_is_left_to_zabbix_at_once():
    receiver = Receiver([(429, {"Retry-After": "60"})], source="zabbix")
    done = run(receiver)
    assert done.returncode == 1 and "nova-hostdown-bridge answered HTTP 429" in done.stdout
    assert len(receiver.requests) == 1


def test_a_4xx_is_not_tried_again_by_the_script():
    receiver = Receiver([400], source="zabbix")
    done = run(receiver)
    assert done.returncode == 1 and "nova-hostdown-bridge answered HTTP 400" in done.stdout
    assert len(receiver.requests) == 1
