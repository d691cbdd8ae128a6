"""Fixtures for suites that run against the real Nova API (tests/realnova/novalab/)."""

from __future__ import annotations

import pytest
import yaml

from tests.harness.faultproxy import FaultProxy
from tests.realnova.fixtures import real_nova  # noqa: F401  (session fixture)


@pytest.fixture
def nova_proxy(real_nova):  # noqa: F811
    """A fault-injecting proxy in front of the real nova-api."""
    upstream = real_nova.endpoint.rsplit("/v2.1", 1)[0]
    proxy = FaultProxy(upstream)
    yield proxy
    proxy.close()


@pytest.fixture
def clean_hosts(real_nova):  # noqa: F811
    """Every compute host up and enabled before and after the test."""
    for host in real_nova.hosts:
        real_nova.reset_host(host)
    yield real_nova.hosts
    for host in real_nova.hosts:
        real_nova.reset_host(host)


@pytest.fixture
def bridge_env(tmp_path, real_nova, nova_proxy):  # noqa: F811
    """Environment for a bridge process whose cloud 'lab' reaches Nova through the proxy."""
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(yaml.safe_dump({"clouds": {"lab": {
        "auth_type": "admin_token",
        "auth": {"token": real_nova.token, "endpoint": nova_proxy.url + "/v2.1"},
        "region_name": "RegionOne",
    }}}))
    return {"OS_CLIENT_CONFIG_FILE": str(clouds), "OS_CLOUD": ""}
