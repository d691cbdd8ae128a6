"""nova-api as the lab's admin, with the standard library (usable without openstacksdk)."""
import json
import urllib.error
import urllib.request

from tests.realnova.novalab.layout import (ENDPOINT, MICROVERSION, TOKEN,
                                           NovaLabError)


class ApiError(NovaLabError):
    def __init__(self, status, text):
        super().__init__('HTTP %s: %s' % (status, text[:500]))
        self.status, self.text = status, text


def api(method, path, body=None, microversion=MICROVERSION, timeout=30):
    req = urllib.request.Request(
        ENDPOINT + path, method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={'X-Auth-Token': TOKEN, 'Content-Type': 'application/json',
                 'OpenStack-API-Version': 'compute ' + microversion})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            data = resp.read()
    except urllib.error.HTTPError as e:
        raise ApiError(e.code, e.read().decode(errors='replace')) from None
    return json.loads(data) if data else None


def compute_service(host):
    svcs = api('GET', '/os-services?binary=nova-compute&host=' + host)
    return svcs['services'][0]
