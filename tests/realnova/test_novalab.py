"""The lab itself works: nova's os-services API through openstacksdk.

real_nova comes from tests.realnova.fixtures via the conftest.
"""
import pytest

pytestmark = pytest.mark.realnova
HOST = 'compute-1'
REASON = 'novalab self-test'


def _compute(conn, host):
    (svc,) = conn.compute.services(binary='nova-compute', host=host)
    return svc


def test_force_down_disable_and_reset(real_nova):
    conn = real_nova.connection(compute_api_version='2.53')
    assert conn.compute.default_microversion == '2.53'
    services = list(conn.compute.services(binary='nova-compute'))
    assert {s.host for s in services} == set(real_nova.hosts)
    assert all(s.state == 'up' and s.status == 'enabled' for s in services)

    try:
        # 2.53: PUT /os-services/{uuid} {"forced_down": true}
        conn.compute.update_service_forced_down(_compute(conn, HOST),
                                                forced=True)
        svc = _compute(conn, HOST)
        assert (svc.is_forced_down, svc.state) == (True, 'down')

        conn.compute.disable_service(svc, disabled_reason=REASON)
        svc = _compute(conn, HOST)
        assert (svc.status, svc.disabled_reason) == ('disabled', REASON)
        # the other host is untouched
        other = _compute(conn, 'compute-2')
        assert (other.state, other.status) == ('up', 'enabled')
    finally:
        real_nova.reset_host(HOST)

    svc = _compute(conn, HOST)
    assert (svc.state, svc.status, svc.is_forced_down) == ('up', 'enabled',
                                                           False)
    assert svc.disabled_reason is None
