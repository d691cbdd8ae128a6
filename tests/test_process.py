"""The bridge as a real gunicorn process: wake-up on the hot path, SIGKILL and restart."""

import pytest

from bridge import incidents as sm
from tests.conftest import sample

pytestmark = pytest.mark.process


def test_serves_health_metrics_and_openapi(bridge_process):
    bridge = bridge_process()
    assert bridge.request("GET", "/healthz", token=None).json() == {"status": "ok"}
    ready = bridge.request("GET", "/readyz", token=None).json()
    assert ready == {"status": "ready", "checks": {"database": "ok", "engine": "ok"}, "observers": {"pause": "ok"}}
    assert bridge.request("GET", "/v1/openapi.json", token=None).json()["openapi"].startswith("3.")
    bridge.post_alert("alertmanager", sample("webhook_firing_api_v2.json"))
    bridge.wait_for_incident("compute-01", sm.FENCING)
    metrics = bridge.request("GET", "/metrics", token=None).text
    assert 'hostdown_bridge_incidents{state="fencing"} 1.0' in metrics
    assert 'hostdown_bridge_signals{source="alertmanager"} 1.0' in metrics


def test_sigkill_with_an_open_incident_resumes_and_completes_once(bridge_process, tmp_path):
    bridge = bridge_process()
    assert bridge.post_alert("alertmanager", sample("webhook_firing_api_v2.json")).status_code == 202
    incident = bridge.wait_for_incident("compute-01", sm.FENCING)
    bridge.kill()  # SIGKILL, master and workers

    restarted = bridge_process()  # same database
    confirm = restarted.cli("fence", "confirm", "compute-01", "--reason", "PDU off")
    assert confirm.returncode == 0, confirm.stderr
    done = restarted.wait_for_incident("compute-01", sm.OUT_OF_SERVICE)
    assert done["id"] == incident["id"]
    moves = [t["to_state"] for t in done["timeline"] if t["from_state"] != t["to_state"]]
    assert moves == [sm.SUSPECTED, sm.FENCING, sm.FENCED, sm.FORCED_DOWN, sm.NOVA_DOWN, sm.OUT_OF_SERVICE]
    assert len(restarted.incidents()) == 1


def test_cli_reports_errors_from_the_api(bridge_process):
    bridge = bridge_process()
    run = bridge.cli("incidents", "show", "42")
    assert run.returncode == 1 and "404: no incident 42" in run.stderr
    run = bridge.cli("incidents", "list", token="wrong")
    assert run.returncode == 1 and "401: wrong admin token" in run.stderr


@pytest.mark.postgres
def test_on_postgresql_two_workers_take_an_alert_and_a_confirmation_to_done(postgres_url, bridge_process):
    # postgres_url first: the bridge is stopped before its database is dropped
    bridge = bridge_process(database={"url": postgres_url}, workers=2)  # the master migrated the empty database
    assert bridge.post_alert("alertmanager", sample("webhook_firing_api_v2.json")).status_code == 202
    bridge.wait_for_incident("compute-01", sm.FENCING)
    assert bridge.confirm("compute-01").status_code == 201
    done = bridge.wait_for_incident("compute-01", sm.OUT_OF_SERVICE)
    moves = [t["to_state"] for t in done["timeline"] if t["from_state"] != t["to_state"]]
    assert moves == [sm.SUSPECTED, sm.FENCING, sm.FENCED, sm.FORCED_DOWN, sm.NOVA_DOWN, sm.OUT_OF_SERVICE]
    assert done["dry_run"] is True and len(bridge.incidents()) == 1
