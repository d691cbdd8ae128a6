"""An upgrade from an earlier release, with incidents open: the new version migrates the
database at start and resumes them where they stood.

The earlier release is a commit of this repository (its `bridge/` package, run from a
directory of its own with this venv): before migration 0004, which added the firing counts
decide() reads, so a migration that forgot to fill them for open incidents would cancel them.
"""

from __future__ import annotations

import subprocess
import tarfile
from io import BytesIO
from pathlib import Path

import pytest
import sqlalchemy as sa

from bridge import incidents as sm
from tests.conftest import sample_json
from tests.harness.bridge_process import BridgeProcess, base_config

pytestmark = pytest.mark.process

ROOT = Path(__file__).resolve().parents[1]
PREVIOUS = "c14f874e690c831620db4465cc36b614598b203f"  # schema at 0003; head adds 0004 and later


def previous_release(where: Path) -> Path:
    """The earlier release's package, from git (the test fails, never skips, without the history)."""
    archive = subprocess.run(["git", "-C", ROOT, "archive", "--format=tar", PREVIOUS, "bridge"],
                             capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(where, filter="data")
    return where


def alert(host: str) -> dict:
    body = sample_json("webhook_firing_api_v2.json")
    body["alerts"][0]["labels"]["openstack_host"] = host
    body["alerts"][0]["fingerprint"] = f"upgrade-{host}"
    return body


def moves(incident: dict) -> list[str]:
    return [t["to_state"] for t in incident["timeline"] if t["from_state"] != t["to_state"]]


def test_an_upgrade_with_incidents_open_migrates_and_resumes_them(database_url, bridge_process, tmp_path):
    config = base_config(tmp_path, database={"url": database_url})
    old = BridgeProcess(tmp_path, config)
    old.process.cwd = previous_release(tmp_path / "previous")  # `python -m bridge` imports it first
    old.start()
    try:
        assert old.post_alert("alertmanager", alert("compute-01")).status_code == 202
        waiting = old.wait_for_incident("compute-01", sm.FENCING)
        assert old.post_alert("alertmanager", alert("compute-02")).status_code == 202
        assert old.confirm("compute-02").status_code == 201
        finished = old.wait_for_incident("compute-02", sm.OUT_OF_SERVICE)
    finally:
        old.stop()
    with sa.create_engine(database_url).connect() as conn:  # the earlier release ran, at its schema
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == "0003"

    new = bridge_process(config)  # this version, same database: migrates at start
    assert new.request("GET", "/readyz", token=None).json()["checks"]["database"] == "ok"
    resumed = new.incident(waiting["id"])
    assert resumed["state"] == sm.FENCING  # still waiting for proof, its alert still firing
    assert new.confirm("compute-01").status_code == 201
    done = new.wait_for_incident("compute-01", sm.OUT_OF_SERVICE)
    assert done["id"] == waiting["id"] and moves(done) == [sm.SUSPECTED, sm.FENCING, sm.FENCED, sm.FORCED_DOWN,
                                                           sm.NOVA_DOWN, sm.OUT_OF_SERVICE]
    kept = new.incident(finished["id"])
    assert kept["state"] == sm.OUT_OF_SERVICE and moves(kept) == moves(finished)
    assert len(new.incidents()) == 2
