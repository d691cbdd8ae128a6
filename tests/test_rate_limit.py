"""Per-token rate limits: over the configured rate a request is shed, with Retry-After, in the
status its sender retries (503 for Alertmanager, 429 for the others); other tokens are unaffected."""

import pytest

from bridge.api.ratelimit import MovingWindows
from bridge.config import DEFAULTS, ConfigError, validate
from tests.conftest import sample
from tests.promtext import samples, value

SHED_STATUS = DEFAULTS["server"]["rate_limit"]["shed_status"]


@pytest.fixture
def limited(make_bridge):
    return make_bridge(server={"rate_limit": {"webhook": "3/minute", "admin": "2/minute"}})


def retry_after(response) -> int:
    seconds = int(response.headers["Retry-After"])
    assert 1 <= seconds <= 61  # the window is a minute; a client may wait no less than a second
    return seconds


def test_alertmanager_over_its_rate_gets_503_with_retry_after_and_nothing_is_stored(limited):
    body = sample("webhook_firing_api_v2.json")
    accepted = [limited.post_alert(body) for _ in range(3)]
    assert [r.status_code for r in accepted] == [202] * 3
    assert all("Retry-After" not in r.headers for r in accepted)
    refused = limited.post_alert(body)
    assert refused.status_code == 503
    retry_after(refused)
    assert refused.json["error"] == "Service Unavailable"
    assert "rate limit exceeded (3 per 1 minute)" in refused.json["message"]
    assert len(limited.store.list_signals()) == 1  # three deliveries of one alert, the fourth refused
    # the count is per source: another source's webhook still gets through
    assert limited.post_alert(b"{}", source="zabbix").status_code == 400


@pytest.mark.parametrize("source", sorted(SHED_STATUS))
def test_each_source_is_shed_with_the_status_its_sender_retries(limited, source):
    assert [limited.post_alert(b"{}", source=source).status_code for _ in range(3)] == [400] * 3
    refused = limited.post_alert(b"{}", source=source)
    assert refused.status_code == {"alertmanager": 503}.get(source, 429)
    retry_after(refused)


def test_the_shed_status_is_configured_per_source(make_bridge):
    bridge = make_bridge(server={"rate_limit": {"webhook": "1/minute",
                                                "shed_status": {"alertmanager": 429, "nagios": 503}}})
    statuses = {source: [bridge.post_alert(b"{}", source=source).status_code for _ in range(2)][1]
                for source in ("alertmanager", "nagios", "zabbix")}
    assert statuses == {"alertmanager": 429, "nagios": 503, "zabbix": 429}


def test_an_admin_token_is_counted_across_the_operator_api_and_gets_429(limited):
    assert [limited.admin("GET", "/v1/incidents").status_code for _ in range(2)] == [200, 200]
    refused = limited.admin("GET", "/v1/signals")
    assert refused.status_code == 429 and refused.json["error"] == "Too Many Requests"
    retry_after(refused)
    assert all(limited.client.get("/healthz").status_code == 200 for _ in range(5))


def test_shed_requests_are_counted_on_metrics_by_source_never_by_the_callers_path(limited):
    shed = "hostdown_bridge_requests_shed_total"
    before = samples(limited.client.get("/metrics").text)  # the counters are this process's, shared by apps
    for _ in range(4):
        limited.post_alert(b"{}", source="nagios")
    for _ in range(5):
        limited.post_alert(b"{}", source="no\nsuch")
    for _ in range(3):
        limited.admin("GET", "/v1/incidents")
    metrics = limited.client.get("/metrics").text
    after = samples(metrics)
    added = {labels: after[(name, labels)] - value(before, name, **dict(labels))
             for name, labels in after if name == shed}
    assert {labels: n for labels, n in added.items() if n} == {
        (("api", "webhook"), ("source", "nagios")): 1, (("api", "webhook"), ("source", "unknown")): 2,
        (("api", "admin"), ("source", "")): 1}
    assert "no\nsuch" not in metrics


def test_rates_are_validated():
    with pytest.raises(ConfigError, match=r"server.rate_limit.webhook: '10/fortnight' is not COUNT/PERIOD"):
        validate({"server": {"rate_limit": {"webhook": "10/fortnight"}}})


@pytest.mark.parametrize("shed_status, why", [
    ({"alertmanager": 500}, r"server.rate_limit.shed_status.alertmanager: 500 is not one of \[429, 503\]"),
    ({"nagois": 429}, r"server.rate_limit.shed_status: 'nagois' is not one of"),
])
def test_the_shed_status_is_validated(shed_status, why):
    with pytest.raises(ConfigError, match=why):
        validate({"server": {"rate_limit": {"shed_status": shed_status}}})



def test_each_limit_is_a_moving_window_and_says_when_it_has_room_again():
    now = [1000.0]
    windows = MovingWindows("3/minute;5/hour", clock=lambda: now[0])
    assert [windows.hit("a") for _ in range(3)] == [None] * 3
    item, wait = windows.hit("a")
    assert (str(item), wait) == ("3 per 1 minute", 60.0)
    assert windows.hit("b") is None  # each caller its own windows
    now[0] += 59.5
    assert windows.hit("a")[1] == 0.5  # refused: not counted
    now[0] += 0.5
    assert [windows.hit("a") for _ in range(2)] == [None, None]
    item, wait = windows.hit("a")  # the hour's fifth went in at 1060; the first of them at 1000
    assert (str(item), wait) == ("5 per 1 hour", 3540.0)
