"""Shared fixtures: an in-process bridge (store + engine + Flask client) and a real process."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from bridge.api import create_app
from bridge.config import Config, validate
from bridge.engine import Engine
from bridge.store import Store, create_engine, upgrade
from tests.fakes import FakeNova
from tests.harness.bridge_process import ADMIN_TOKEN, WEBHOOK_TOKEN, BridgeProcess, base_config
from tests.harness.postgres import postgres_cluster, postgres_url  # noqa: F401 (fixtures)

pytest_plugins = ["tests.suites"]

SAMPLES = Path(__file__).resolve().parent / "samples"


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def sample_json(name: str) -> dict:
    return json.loads(sample(name))


class Clock:
    """A clock tests move by hand."""

    def __init__(self):
        self.now = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class InProcessBridge:
    """Store, engine and Flask test client in one process; the engine runs only when told."""

    def __init__(self, tmp_path: Path, fake=None, **overrides):
        raw = base_config(tmp_path, **overrides)
        data = validate(raw)
        self.config = Config(data=data, admin_tokens={ADMIN_TOKEN: "ops"},
                             webhook_tokens={source: WEBHOOK_TOKEN for source in data["auth"]["webhook_tokens"]})
        engine = create_engine(data["database"]["url"])
        upgrade(engine)
        self.store = Store(engine)
        self.clock = Clock()
        self.nova = fake
        self.engine = Engine(self.config, self.store, fake, clock=self.clock)
        self.client = create_app(self.config, self.store, None, clock=self.clock,
                                 inventory=self.engine.inventory).test_client()

    def post_alert(self, body, source="alertmanager", token=WEBHOOK_TOKEN, **kwargs):
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.client.post(f"/v1/alerts/{source}", data=data, headers=headers,
                                content_type="application/json", **kwargs)

    def admin(self, method: str, path: str, **kwargs):
        return self.client.open(path, method=method, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, **kwargs)

    def confirm(self, host: str, reason: str = "PDU port off", **extra):
        return self.admin("POST", f"/v1/hosts/{host}/fence-confirmation", json={"reason": reason, **extra})

    def settle(self, rounds: int = 50) -> None:
        """Run the engine until nothing moves."""
        for _ in range(rounds):
            if not self.engine.run_once():
                return
        raise AssertionError("engine did not settle")

    def incident(self, incident_id: int) -> dict:
        return self.store.get_incident(incident_id)

    def only_incident(self) -> dict:
        items = self.store.list_incidents()
        assert len(items) == 1, items
        return self.store.get_incident(items[0]["id"])

    def signals_of(self, incident_id: int) -> list[dict]:
        """Every signal linked to the incident, paged through as the API does."""
        return every(lambda after: self.store.incident_signals(incident_id, after=after, limit=100))


def every(fetch) -> list[dict]:
    """All pages of fetch(after) (oldest first, paged on id) joined."""
    out: list[dict] = []
    while page := fetch(out[-1]["id"] if out else 0):
        out += page
    return out


def joined(incident: dict, burst: str = "joined") -> int:
    """How many alerts the incident's timeline says joined it (counted across burst entries)."""
    return sum(t["detail"]["count"] for t in incident["timeline"] if t["detail"].get("burst") == burst)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    """A test that uses it runs twice: on SQLite (the default) and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'bridge.sqlite'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def make_bridge(database_url, tmp_path):
    """Factory: InProcessBridge(tmp_path, ...) on the database_url backend."""
    made: list[InProcessBridge] = []

    def make(fake=None, **overrides) -> InProcessBridge:
        made.append(InProcessBridge(tmp_path, fake, database={"url": database_url}, **overrides))
        return made[-1]

    yield make
    for each in made:  # before the PostgreSQL database is dropped
        each.store.engine.dispose()


@pytest.fixture
def bridge(make_bridge):
    """An in-process bridge, dry-run, no cloud."""
    return make_bridge()


@pytest.fixture
def fake_nova():
    fake = FakeNova(["compute-01", "compute-02.example.org", "compute-03"])
    yield fake
    assert fake.unused_failures() == {}, "a failure the test set up was never raised"


@pytest.fixture
def live_bridge(make_bridge, fake_nova):
    """An in-process bridge that acts (not dry-run) on a fake Nova."""
    return make_bridge(fake_nova, dry_run=False, nova={"cloud": "fake"})


@pytest.fixture
def bridge_process(tmp_path):
    """Factory: start real bridge processes; every one is stopped at the end."""
    started: list[BridgeProcess] = []

    def start(config: dict | None = None, env: dict | None = None, workers: int = 2, **overrides):
        process = BridgeProcess(tmp_path, config or base_config(tmp_path, **overrides), env=env, workers=workers)
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.kill()
