"""Each source has its own token: one leaked sender cannot speak for another."""

from bridge.api import create_app
from bridge.config import Config, validate
from bridge.store import Store, create_engine, upgrade
from tests.conftest import sample
from tests.harness.bridge_process import base_config


def test_a_token_opens_only_its_own_source(tmp_path):
    data = validate(base_config(tmp_path))
    tokens = {"alertmanager": "am", "zabbix": "zb", "nagios": "ng", "icinga2": "ic"}
    engine = create_engine(data["database"]["url"])
    upgrade(engine)
    client = create_app(Config(data=data, webhook_tokens=tokens, admin_tokens={}), Store(engine)).test_client()
    body = sample("zabbix/webhook_problem.json")
    for source, token in tokens.items():
        for other in set(tokens) - {source}:
            response = client.post(f"/v1/alerts/{other}", data=body, headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 401, (source, other)
    assert Store(engine).list_signals() == []
