"""Per-token rate limits: over the configured rate, 429 with Retry-After; other tokens unaffected."""

import pytest

from bridge.config import ConfigError, validate
from tests.conftest import sample


@pytest.fixture
def limited(make_bridge):
    return make_bridge(server={"rate_limit": {"webhook": "3/minute", "admin": "2/minute"}})


def test_a_webhook_token_over_its_rate_gets_429_with_retry_after(limited):
    body = sample("webhook_firing_api_v2.json")
    assert [limited.post_alert(body).status_code for _ in range(3)] == [202] * 3
    refused = limited.post_alert(body)
    assert refused.status_code == 429
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    assert refused.json["error"] == "Too Many Requests"
    assert len(limited.store.list_signals()) == 1  # three deliveries of one alert, the fourth refused
    # the count is per source: another source's webhook still gets through
    assert limited.post_alert(b"{}", source="zabbix").status_code == 400


def test_an_admin_token_over_its_rate_gets_429_and_health_is_never_limited(limited):
    assert [limited.admin("GET", "/v1/incidents").status_code for _ in range(3)] == [200, 200, 429]
    assert "Retry-After" in limited.admin("GET", "/v1/signals").headers
    assert all(limited.client.get("/healthz").status_code == 200 for _ in range(5))


def test_rates_are_validated():
    with pytest.raises(ConfigError, match=r"server.rate_limit.webhook: '10/fortnight' is not COUNT/PERIOD"):
        validate({"server": {"rate_limit": {"webhook": "10/fortnight"}}})
